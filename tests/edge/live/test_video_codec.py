"""An official whose browser lacks H.264: the box publishes VP8 (the relay never transcodes),
the official decodes every box frame in order, and the recording stays H.264 in MPEG-TS."""

from __future__ import annotations

import av
import pytest

from contracts import signaling as sig
from edge.live.call import BoxCall, encoder_for
from edge.live.errors import UnsupportedCodec
from edge.media.config import MediaConfig
from edge.media.encoder import VideoEncoder
from edge.media.recorder import inspect
from tests.edge.live.conftest import NODE, WAIT, Stack
from tests.edge.live.official import negotiated
from tests.edge.live.test_call import in_order, packets_per_stream
from tests.media.peers import read_stamp, wait_for


async def test_an_official_without_h264_gets_the_box_in_vp8_and_the_recording_stays_h264(
    stack: Stack,
) -> None:
    service = stack.service
    official = await stack.official(vp8_only=True)
    box_stamps: list[int] = []
    try:
        await service.request_reception(stack.case_no)
        entry = (await official.until(sig.Queue, lambda q: bool(q.entries))).entries[0]
        await official.send(sig.Accept(request_id=entry.request_id, video_codecs=["VP8"]))
        started = await official.until(sig.SessionStarted)
        assert started.video_codec == "VP8"
        await wait_for(lambda: service.call is not None, WAIT, "the call")
        call = service.call
        assert call is not None and call.video_codec == "VP8"
        call.remote_frame_sinks.append(lambda f: box_stamps.append(read_stamp(f) or -1))
        await official.start_media(started.session_id, NODE)

        await wait_for(
            lambda: len(official.subscriber.stamps) >= 30, WAIT, "30 box frames at the official"
        )
        await wait_for(lambda: len(box_stamps) >= 30, WAIT, "30 official frames on the box")
        assert in_order(official.subscriber.stamps), official.subscriber.stamps
        assert -1 not in box_stamps and in_order(box_stamps), box_stamps
        answer = official.subscriber.pc.remoteDescription
        assert negotiated(answer.sdp) == ["video/VP8"], "the official receives VP8"
        assert call.video is not None and call.video.encoder.name == "libvpx"
        stats = service.state().call
        assert stats is not None and stats.video_codec == "VP8"
        assert stats.publish == stats.subscribe == "connected"

        await official.send(sig.End(session_id=started.session_id))
        await wait_for(lambda: service.phase == "ended", WAIT, "the end of the call")
        await service.wait_teardown()
        ((_, _, rec),) = stack.sink.added
        assert inspect(rec.path).sha256 == rec.sha256 and rec.duration > 1.5
        assert packets_per_stream(rec.path) == {"video": 2, "audio": 2}, "four streams with media"
        with av.open(str(rec.path)) as container:
            assert [s.codec_context.name for s in container.streams.video] == ["h264", "h264"]
    finally:
        await official.close()


def test_h264_sessions_never_publish_vp8_even_when_configured() -> None:
    media = MediaConfig(width=320, height=240, encoder="vp8")
    h264, vp8 = encoder_for(media, "H264"), encoder_for(media, "VP8")
    try:
        assert (h264.codec, vp8.codec, vp8.name) == ("h264", "vp8", "libvpx")
    finally:
        h264.close()
        vp8.close()


async def test_a_call_refuses_an_encoder_of_another_codec() -> None:
    async def send(frame: sig.Frame) -> None:
        raise AssertionError("nothing is sent")

    encoder = VideoEncoder("libx264", width=320, height=240)
    try:
        with pytest.raises(UnsupportedCodec, match=r"publishes VP8.*'libx264' \(h264\)"):
            BoxCall("s-1", "zhang", MediaConfig(), send, encoder=encoder, video_codec="VP8")
    finally:
        encoder.close()
