"""The sources as aiortc tracks: raw frames, or packets encoded once and shared with sinks."""

from __future__ import annotations

import av

from edge.media.encoder import Packet, VideoEncoder
from edge.media.sources import SyntheticAudio, SyntheticVideo
from edge.media.tracks import EncodedVideoTrack, SourceTrack


async def test_encoded_track_gives_packets_and_shares_them_with_sinks() -> None:
    track = EncodedVideoTrack(SyntheticVideo(fps=30), VideoEncoder("libx264"))
    seen: list[Packet] = []
    track.sinks.append(seen.append)
    sent = [await track.recv() for _ in range(5)]
    assert [bytes(p) for p in sent] == [bytes(p) for p in seen]
    assert sent[0].is_keyframe and [p.pts for p in sent] == sorted(p.pts for p in sent)
    track.request_keyframe()
    assert (await track.recv()).is_keyframe
    track.stop()
    assert track.readyState == "ended"


async def test_source_track_gives_audio_frames() -> None:
    track = SourceTrack(SyntheticAudio())
    assert track.kind == "audio"
    frame = await track.recv()
    assert isinstance(frame, av.AudioFrame) and frame.samples == 960
