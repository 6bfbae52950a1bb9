"""The box's sources as aiortc tracks.

``SourceTrack`` hands raw frames to aiortc (which then encodes them itself). ``EncodedVideoTrack``
encodes with our ``VideoEncoder`` and hands aiortc pre-encoded ``av.Packet``s, which its sender
only packetizes; the same packets go to any ``sinks`` (the recorder), so the box's video is
encoded once. aiortc ignores keyframe requests (PLI/FIR) for pre-encoded tracks and does not tell
them the congestion estimate: whoever owns the peer connection calls ``request_keyframe`` and
``set_bitrate`` on the track.

A device that becomes unavailable does not end a track: it sends black frames (video) or silence
(audio) at the source's pace until the device returns, so the call survives an unplugged camera.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from edge.media.encoder import Packet, VideoEncoder
from edge.media.errors import DeviceUnavailable
from edge.media.sources import (
    AUDIO_PTIME,
    AUDIO_RATE,
    AUDIO_SAMPLES,
    AUDIO_TIME_BASE,
    VIDEO_TIME_BASE,
    AudioSource,
    VideoSource,
)

log = logging.getLogger(__name__)

PacketSink = Callable[[Packet], None]


class _Filler:
    """Black frames or silence while a device is unavailable, continuing its timeline."""

    def __init__(self, kind: str, width: int = 640, height: int = 480, fps: int = 15) -> None:
        self.kind, self.width, self.height, self.fps = kind, width, height, fps
        self.start = time.monotonic()
        self.logged = False

    async def frame(self) -> av.VideoFrame | av.AudioFrame:
        interval = 1 / self.fps if self.kind == "video" else AUDIO_PTIME
        await asyncio.sleep(interval)
        elapsed = time.monotonic() - self.start
        if self.kind == "video":
            yuv = np.full((self.height * 3 // 2, self.width), 16, np.uint8)
            yuv[self.height :] = 128
            video = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            video.pts = round(elapsed / VIDEO_TIME_BASE)
            video.time_base = VIDEO_TIME_BASE
            return video
        audio = av.AudioFrame.from_ndarray(
            np.zeros((1, AUDIO_SAMPLES), np.int16), format="s16", layout="mono"
        )
        audio.sample_rate = AUDIO_RATE
        audio.pts = round(elapsed * AUDIO_RATE)
        audio.time_base = AUDIO_TIME_BASE
        return audio


class SourceTrack(MediaStreamTrack):
    """A video or audio source as an aiortc track of raw frames."""

    def __init__(self, source: VideoSource | AudioSource) -> None:
        super().__init__()
        self.kind = source.kind
        self.source = source
        if source.kind == "video":
            self._filler = _Filler("video", source.width, source.height, source.fps)
        else:
            self._filler = _Filler("audio")

    async def recv(self) -> av.VideoFrame | av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            frame: av.VideoFrame | av.AudioFrame = await self.source.next_frame()
        except DeviceUnavailable as exc:
            if not self._filler.logged:
                log.warning("%s track: %s; sending filler until it returns", self.kind, exc)
                self._filler.logged = True
            return await self._filler.frame()
        self._filler.logged = False
        return frame


class EncodedVideoTrack(MediaStreamTrack):
    """A video source encoded by a ``VideoEncoder``; ``recv`` gives ``av.Packet``s."""

    kind = "video"

    def __init__(self, source: VideoSource, encoder: VideoEncoder) -> None:
        super().__init__()
        self.source, self.encoder = source, encoder
        self.sinks: list[PacketSink] = []
        self._frames = SourceTrack(source)
        self._pending: deque[Packet] = deque()

    @property
    def codec(self) -> str:
        return self.encoder.codec

    def request_keyframe(self) -> None:
        self.encoder.request_keyframe()

    def set_bitrate(self, bps: int) -> int:
        return self.encoder.set_bitrate(bps)

    async def recv(self) -> Packet:
        while not self._pending:
            if self.readyState != "live":
                raise MediaStreamError
            frame = await self._frames.recv()
            assert isinstance(frame, av.VideoFrame)
            packets = await asyncio.to_thread(self.encoder.encode, frame)
            for packet in packets:
                for sink in self.sinks:
                    try:
                        sink(packet)
                    except Exception:
                        log.exception("video track: a packet sink failed")
            self._pending.extend(packets)
        return self._pending.popleft()

    def stop(self) -> None:
        self._frames.stop()
        super().stop()
