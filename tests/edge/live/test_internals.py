"""The aiortc sender internals ``EncodedVideoTrack.attach`` hooks (PLI/FIR, REMB) are checked
by ``runtime.rtc.check_internals``: attaching to a real sender passes the check."""

from __future__ import annotations

from aiortc import RTCPeerConnection

from edge.media.encoder import VideoEncoder
from edge.media.sources import SyntheticVideo
from edge.media.tracks import EncodedVideoTrack
from runtime.rtc import internals_problems


async def test_the_hooked_sender_internals_are_as_expected() -> None:
    assert internals_problems() == []
    pc = RTCPeerConnection()
    track = EncodedVideoTrack(SyntheticVideo(), VideoEncoder())
    try:
        sender = pc.addTrack(track)
        track.attach(sender)
        assert sender._send_keyframe.__name__ == "keyframe"
    finally:
        track.stop()
        await pc.close()
