"""The box's side of a live call, with real parts: a signaling server and the hub relay on
127.0.0.1, the box's ``LiveService`` with its synthetic camera and microphone, and an aiortc
official. Frame numbers travel in the pixels (``contracts.framestamp``)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path

import av
import pytest

from contracts import signaling as sig
from edge.live.call import BoxCall
from edge.media.recorder import inspect
from tests.edge.live.conftest import NODE, WAIT, Stack
from tests.edge.live.official import Official
from tests.media.peers import read_stamp, wait_for


def in_order(stamps: list[int]) -> bool:
    return all(b > a for a, b in itertools.pairwise(stamps))


async def test_request_queue_call_and_recording(stack: Stack) -> None:
    service = stack.service
    official = await stack.official()
    box_stamps: list[int] = []
    try:
        await official.until(sig.Queue)
        state = await service.request_reception(stack.case_no)
        assert state.state == "waiting"

        queue = await official.until(sig.Queue, lambda q: bool(q.entries))
        entry = queue.entries[0]
        assert (entry.case_no, entry.node, entry.category) == (stack.case_no, NODE, "claim")
        assert entry.summary == ("房屋漏水。" * 30)[:80]
        await wait_for(lambda: service.state().position == 1, WAIT, "queue position 1")

        await official.send(sig.Accept(request_id=entry.request_id))
        started = await official.until(sig.SessionStarted)
        await wait_for(lambda: service.phase == "in_call", WAIT, "the box in the call")
        assert service.state().session_id == started.session_id
        assert service.state().official == "official-li"
        call = service.call
        assert call is not None

        call.remote_frame_sinks.append(lambda f: box_stamps.append(read_stamp(f) or -1))
        await official.start_media(started.session_id, NODE)

        # both directions decode, in order
        await wait_for(lambda: len(box_stamps) >= 30, WAIT, "30 official frames on the box")
        await wait_for(
            lambda: len(official.subscriber.stamps) >= 30, WAIT, "30 box frames at the official"
        )
        assert -1 not in box_stamps and in_order(box_stamps), box_stamps
        assert in_order(official.subscriber.stamps), official.subscriber.stamps
        stats = service.state().call
        assert stats is not None and stats.remote_frames >= 30
        assert stats.publish == stats.subscribe == "connected"

        await check_keyframe_request_and_remb(call, official)

        # the official ends the call: the recording holds both directions
        await official.send(sig.End(session_id=started.session_id))
        await wait_for(lambda: service.phase == "ended", WAIT, "the end of the call")
        assert service.state().ended_reason == "completed"
        await service.wait_teardown()
        assert len(stack.sink.added) == 1
        case_no, session_id, rec = stack.sink.added[0]
        assert (case_no, session_id) == (stack.case_no, started.session_id)
        assert rec.path.name == f"{stack.case_no}_{session_id}-001.ts"
        assert inspect(rec.path).sha256 == rec.sha256 and rec.duration > 1.5
        assert packets_per_stream(rec.path) == {"video": 2, "audio": 2}, "four streams with media"
    finally:
        await official.close()


async def check_keyframe_request_and_remb(call: BoxCall, official: Official) -> None:
    """The official's picture-loss request reaches the box's encoder through the relay, and
    the relay's congestion estimate (REMB) reaches the box's track."""
    video = call.video
    assert video is not None
    requests, keyframes = video.keyframe_requests, video.encoder.keyframes
    receiver = official.subscriber.pc.getTransceivers()[1].receiver
    assert receiver.track.kind == "video"
    await asyncio.sleep(1.2)  # the relay forwards at most one request a second
    await receiver._send_rtcp_pli(receiver.getSynchronizationSources()[0].source)
    await wait_for(lambda: video.keyframe_requests > requests, WAIT, "a keyframe request")
    await wait_for(lambda: video.encoder.keyframes > keyframes, WAIT, "a new keyframe")
    await wait_for(lambda: video.bitrate_estimate is not None, WAIT, "a REMB estimate")
    encoder = video.encoder

    def follows_estimate() -> bool:
        estimate = video.bitrate_estimate or 0
        return encoder.bitrate == max(encoder.bitrate_min, min(encoder.bitrate_max, estimate))

    await wait_for(follows_estimate, WAIT, "the encoder at the estimated bitrate")


def packets_per_stream(path: Path) -> dict[str, int]:
    """How many streams of each kind carry packets."""
    seen: set[int] = set()
    kinds: dict[int, str] = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            kinds[stream.index] = stream.type
        for packet in container.demux():
            if packet.size:
                seen.add(packet.stream.index)
    counts: dict[str, int] = {}
    for index in seen:
        counts[kinds[index]] = counts.get(kinds[index], 0) + 1
    return counts


async def test_cancel_withdraws_the_request(stack: Stack) -> None:
    service = stack.service
    official = await stack.official()
    try:
        await service.request_reception(stack.case_no)
        await wait_for(lambda: service.state().position == 1, WAIT, "queue position 1")
        await official.until(sig.Queue, lambda q: bool(q.entries))
        state = await service.cancel()
        assert state.state == "idle"

        def last_queue() -> sig.Queue:
            return [f for f in official.frames if isinstance(f, sig.Queue)][-1]

        await wait_for(lambda: not last_queue().entries, WAIT, "an empty queue")
        assert service.state().request_id is None
    finally:
        await official.close()


async def test_unknown_case_and_second_request_are_refused(stack: Stack) -> None:
    from edge.live.errors import UnknownCase, WrongState

    with pytest.raises(UnknownCase, match="510104021-01-010101-0001"):
        await stack.service.request_reception("510104021-01-010101-0001")
    await stack.service.request_reception(stack.case_no)
    with pytest.raises(WrongState, match="waiting"):
        await stack.service.request_reception(stack.case_no)


async def test_the_call_survives_a_dropped_signaling_socket(stack: Stack) -> None:
    service = stack.service
    official = await stack.official()
    try:
        await service.request_reception(stack.case_no)
        entry = (await official.until(sig.Queue, lambda q: bool(q.entries))).entries[0]
        await official.send(sig.Accept(request_id=entry.request_id))
        started = await official.until(sig.SessionStarted)
        await wait_for(lambda: service.call is not None, WAIT, "the call")
        await official.start_media(started.session_id, NODE)
        call = service.call
        assert call is not None
        await wait_for(lambda: call.remote_frames >= 10, WAIT, "the official's frames")

        service.client.drop()
        await wait_for(lambda: service.client.connects >= 2, WAIT, "a reconnect")
        before = call.remote_frames
        await wait_for(lambda: call.remote_frames >= before + 15, WAIT, "frames after the rejoin")
        assert service.phase == "in_call" and service.call is call
        assert not [f for f in official.frames if isinstance(f, sig.SessionEnded)]
    finally:
        with contextlib.suppress(Exception):
            await official.close()
