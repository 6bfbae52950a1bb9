"""The session's video codec over real WebSockets: the official's ``accept`` says what its
browser decodes, and every ``session_started`` of the session names the codec the box publishes
(the relay never transcodes)."""

from __future__ import annotations

import pytest

from contracts import signaling as sig
from contracts.access import Role
from tests.signaling.conftest import TOWNSHIP, Client, Connect
from tests.signaling.test_server import box_waiting, relay_expect, sync


@pytest.mark.parametrize(
    ("decodes", "chosen"),
    [(None, "H264"), (["VP8", "H264"], "H264"), (["H264"], "H264"), (["VP8"], "VP8")],
)
def test_the_box_publishes_h264_when_the_official_decodes_it_else_vp8(
    decodes: list[sig.VideoCodec] | None, chosen: sig.VideoCodec
) -> None:
    assert sig.choose_video_codec(decodes) == chosen


async def test_every_session_started_of_a_vp8_session_says_vp8(connect: Connect) -> None:
    relay = await connect(sig.RELAY_SUBJECT, Role.ADMIN, "51")  # connected before the accept
    box, queued = await box_waiting(connect)
    zhang = await connect("zhang", Role.OFFICIAL, "510104")
    await zhang.until(sig.Queue, lambda q: len(q.entries) == 1)
    await zhang.send(sig.Accept(request_id=queued.request_id, video_codecs=["VP8"]))

    for_box = await box.expect(sig.SessionStarted)
    for_zhang = await zhang.until(sig.SessionStarted)
    for_relay = await relay_expect(relay, sig.SessionStarted)
    sid = for_box.session_id
    assert (for_zhang.session_id, for_relay.session_id) == (sid, sid)
    assert [s.video_codec for s in (for_box, for_zhang, for_relay)] == ["VP8"] * 3

    monitor = await connect("li", Role.MONITOR, "5101")
    await monitor.expect(sig.Live)
    await monitor.send(sig.Watch(session_id=sid))
    assert (await monitor.expect(sig.SessionStarted)).video_codec == "VP8"

    late_relay = await connect(sig.RELAY_SUBJECT, Role.ADMIN, "51")  # replaces the first
    assert (await relay_expect(late_relay, sig.SessionStarted)).video_codec == "VP8"

    resumed = await connect("box-1", Role.BOX, TOWNSHIP, welcome=False)  # replaces the box
    assert (await resumed.expect(sig.Welcome)).session_id == sid
    again = await resumed.expect(sig.SessionStarted)
    assert (again.session_id, again.video_codec) == (sid, "VP8")


async def test_an_official_decoding_both_gets_h264(connect: Connect) -> None:
    box, queued = await box_waiting(connect)
    zhang = await connect("zhang", Role.OFFICIAL, "510104")
    await zhang.until(sig.Queue, lambda q: len(q.entries) == 1)
    await zhang.send(sig.Accept(request_id=queued.request_id, video_codecs=["VP8", "H264"]))
    assert (await box.expect(sig.SessionStarted)).video_codec == "H264"
    assert (await zhang.until(sig.SessionStarted)).video_codec == "H264"


@pytest.mark.parametrize(
    ("codecs", "says"),
    [
        ([], "video_codecs [] names none of ['H264', 'VP8']"),
        (["AV1"], "video_codecs.0: Input should be 'H264' or 'VP8'"),
        ("VP8", "video_codecs: Input should be a valid list"),
    ],
    ids=["empty", "unknown-name", "not-a-list"],
)
async def test_a_bad_codec_list_is_refused_and_the_request_stays_waiting(
    connect: Connect, codecs: object, says: str
) -> None:
    box, queued = await box_waiting(connect)
    zhang: Client = await connect("zhang", Role.OFFICIAL, "510104")
    await zhang.until(sig.Queue, lambda q: len(q.entries) == 1)
    await zhang.send({"type": "accept", "request_id": queued.request_id, "video_codecs": codecs})
    error = await zhang.expect(sig.Error)
    assert (error.code, error.frame_type) == ("invalid_field", "accept")
    assert says in error.message
    await sync(box)  # no session started for the box

    await zhang.send(sig.Accept(request_id=queued.request_id, video_codecs=["VP8"]))  # still open
    assert (await zhang.expect(sig.SessionStarted)).video_codec == "VP8"
    assert (await box.expect(sig.SessionStarted)).video_codec == "VP8"
