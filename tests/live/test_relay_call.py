"""A call through the hub's relay: box and official publish and subscribe over signaling, a
monitor watches; every frame arrives in order, at 15 fps, at the official and at the monitor
(frame numbers read from the pixels)."""

from __future__ import annotations

import itertools

from tests.support.live import LiveStack, case_no
from tests.support.livepeer import FPS, LivePeer

FRAMES = 45
"""3 s of video at 15 fps."""


def assert_in_order(stamps: list[int], who: str) -> None:
    gaps = [(a, b) for a, b in itertools.pairwise(stamps) if b != a + 1]
    assert not gaps, f"{who}: frames out of order or missing at {gaps[:5]} in {stamps}"


def assert_rate(arrivals: list[float], who: str) -> None:
    """The frames came at the publisher's rate (15 fps, within 20 % over the whole run)."""
    span = arrivals[-1] - arrivals[0]
    fps = (len(arrivals) - 1) / span
    assert FPS * 0.8 < fps < FPS * 1.2, f"{who}: {fps:.1f} fps over {span:.2f} s"


async def test_box_and_official_call_through_the_relay_and_a_monitor_watches(
    stack: LiveStack,
) -> None:
    box_token = stack.box_token("box-a")
    async with (
        LivePeer(stack.signaling_url, box_token, "box-a", shade=60) as box,
        LivePeer(stack.signaling_url, stack.user_token("zhang"), "zhang", shade=120) as official,
        LivePeer(stack.signaling_url, stack.user_token("li_monitor"), "li_monitor") as monitor,
    ):
        request_id = await box.request_reception(case_no())
        started = await official.accept(request_id)
        assert (await box.started()).session_id == started.session_id
        session = started.session_id

        await box.publish(session)
        await official.publish(session)
        to_official = await official.subscribe(session)
        to_box = await box.subscribe(session)
        assert (to_official.source, to_box.source) == ("box-a", "zhang")

        await monitor.watch(session)
        to_monitor = await monitor.subscribe(session, source="box-a")

        await official.wait_frames(session, "box-a", FRAMES)
        await monitor.wait_frames(session, "box-a", FRAMES)
        await box.wait_frames(session, "zhang", FRAMES)

        for who, sub in (("official", to_official), ("monitor", to_monitor), ("box", to_box)):
            assert_in_order(sub.stamps, who)
            assert_rate(sub.arrivals, who)
            assert sub.unreadable == 0, f"{who}: {sub.unreadable} frames without a stamp"
        # the monitor is nobody's peer: the participants' session_started lists only them
        assert {p.sub for p in started.peers} == {"box-a", "zhang"}
        assert box.frames_of(type(started))[-1].peers == started.peers
