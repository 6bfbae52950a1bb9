"""The box's sources as aiortc tracks.

``SourceTrack`` hands raw frames to aiortc (which then encodes them itself). ``EncodedVideoTrack``
encodes with our ``VideoEncoder`` and hands aiortc pre-encoded ``av.Packet``s, which its sender
only packetizes; the same packets go to any ``sinks`` (the recorder), so the box's video is
encoded once. aiortc ignores keyframe requests (PLI/FIR) for pre-encoded tracks and does not tell
them the congestion estimate: ``EncodedVideoTrack.attach(sender)`` hooks the sender so that a
PLI/FIR calls ``request_keyframe`` and a REMB estimate calls ``set_bitrate`` (the hooked aiortc
internals are checked by ``runtime.rtc.check_internals``). Raw frames (the self view, the
recording of the microphone) reach ``frame_sinks``.

A device that becomes unavailable does not end a track: it sends black frames (video) or silence
(audio) at the source's pace until the device returns, so the call survives an unplugged camera.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci

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
from runtime.rtc import check_internals

log = logging.getLogger(__name__)

PacketSink = Callable[[Packet], None]
FrameSink = Callable[[Any], None]
"""Takes an ``av.VideoFrame`` or ``av.AudioFrame``; must not block (it runs on the loop)."""


def _feed(sinks: list[FrameSink], frame: object, what: str) -> None:
    for sink in sinks:
        try:
            sink(frame)
        except Exception:
            log.exception("%s: a frame sink failed", what)


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
        self.frame_sinks: list[FrameSink] = []
        """Called with every frame handed to aiortc (the source's or filler)."""
        self.frames = 0
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
            frame = await self._filler.frame()
        else:
            self._filler.logged = False
        self.frames += 1
        _feed(self.frame_sinks, frame, f"{self.kind} track")
        return frame


class EncodedVideoTrack(MediaStreamTrack):
    """A video source encoded by a ``VideoEncoder``; ``recv`` gives ``av.Packet``s. ``sinks``
    get every packet, ``frame_sinks`` every raw frame before it is encoded."""

    kind = "video"

    def __init__(self, source: VideoSource, encoder: VideoEncoder) -> None:
        super().__init__()
        self.source, self.encoder = source, encoder
        self.sinks: list[PacketSink] = []
        self._frames = SourceTrack(source)
        self.frame_sinks = self._frames.frame_sinks
        self._pending: deque[Packet] = deque()
        self.keyframe_requests = 0
        """Keyframe requests received (``request_keyframe`` calls, PLI/FIR included)."""
        self.bitrate_estimate: int | None = None
        """The last REMB estimate a receiver sent, bits/s."""

    @property
    def codec(self) -> str:
        return self.encoder.codec

    @property
    def frames(self) -> int:
        """Frames taken from the source."""
        return self._frames.frames

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self.encoder.request_keyframe()

    def set_bitrate(self, bps: int) -> int:
        return self.encoder.set_bitrate(bps)

    def attach(self, sender: RTCRtpSender) -> None:
        """Make ``sender``'s PLI/FIR call :meth:`request_keyframe` and its REMB estimates call
        :meth:`set_bitrate` (aiortc only tells its own encoder, which this track bypasses).
        Raises ``runtime.rtc.RtcInternalsChanged`` when aiortc's internals are not the ones
        hooked here."""
        if sender.track is not self:
            raise ValueError("attach() takes the sender that sends this track")
        check_internals()
        if getattr(sender._send_keyframe, "_edge_track", None) is not None:
            raise ValueError("this sender is already attached to a track")
        send_keyframe = sender._send_keyframe
        handle_rtcp = sender._handle_rtcp_packet

        def keyframe() -> None:
            send_keyframe()
            self.request_keyframe()

        async def rtcp(packet: Any) -> None:
            await handle_rtcp(packet)
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                if sender._ssrc in ssrcs:
                    self.bitrate_estimate = bitrate
                    self.set_bitrate(bitrate)

        keyframe._edge_track = self  # type: ignore[attr-defined]
        sender._send_keyframe = keyframe  # type: ignore[method-assign]
        sender._handle_rtcp_packet = rtcp  # type: ignore[method-assign]

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
