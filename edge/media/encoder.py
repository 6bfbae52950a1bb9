"""Video encoding for the box: ``av.VideoFrame`` in, ``av.Packet`` out, ready for aiortc's
packetizer (pre-encoded packets) and for the recorder.

H.264 comes from the Pi's hardware encoder ``h264_v4l2m2m`` when it is present and works (probed
once per process by encoding a few frames; any failure falls back with a log line), otherwise
from libx264 with preset ``ultrafast`` and tune ``zerolatency`` in the baseline profile (which x264
writes as Constrained Baseline, profile-level-id 42e0xx, the profile every WebRTC endpoint
decodes), Annex B byte stream, SPS/PPS repeated before every keyframe, no B-frames, no scene-cut
keyframes. VP8 (libvpx, realtime) has the same interface for subscribers without H.264.

``request_keyframe()`` makes the next packet a keyframe. ``set_bitrate(bps)`` follows the
congestion estimate: libx264 takes a new target on the fly, with no keyframe (FFmpeg's libx264
wrapper reconfigures x264 when ``bit_rate`` changes; x264 moves its rate only for a stream that
started in CBR mode, so libx264 runs in CBR with a one-second VBV buffer of the starting rate).
Encoders that cannot (libvpx and the V4L2 encoder read their rate only when opened) are rebuilt,
and a rebuild costs a keyframe, so they are rebuilt only for a change of at least
``REBUILD_CHANGE`` and at most once per ``REBUILD_INTERVAL``: never the keyframe storm of aiortc's
own encoder, which rebuilds on every change above 10 %.

Every method here is synchronous and CPU-bound: callers run ``encode`` in a thread
(``asyncio.to_thread``); ``request_keyframe`` and ``set_bitrate`` only set fields and are safe
from any thread.
"""

from __future__ import annotations

import fractions
import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import av
import numpy as np
from av.video.frame import PictureType

from edge.media.config import EncoderName, MediaConfig
from edge.media.errors import EncoderError
from runtime.encoding import low_latency_encoder

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    Packet = av.Packet[Any]
else:
    Packet = av.Packet

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
#: A rebuilding encoder follows a bitrate change only when it is at least this large ...
REBUILD_CHANGE = 0.25
#: ... and at most once in this many seconds (each rebuild starts with a keyframe).
REBUILD_INTERVAL = 5.0
PROBE_FRAMES = 8

Codec = Literal["h264", "vp8"]


@dataclass(frozen=True)
class _Backend:
    name: str  # FFmpeg encoder
    codec: Codec  # what goes on the wire
    live_bitrate: bool  # takes a new bit_rate without being rebuilt


LIBX264 = _Backend("libx264", "h264", live_bitrate=True)
V4L2M2M = _Backend("h264_v4l2m2m", "h264", live_bitrate=False)
LIBVPX = _Backend("libvpx", "vp8", live_bitrate=False)


@dataclass(frozen=True)
class _Settings:
    width: int
    height: int
    fps: int
    bitrate_max: int
    keyframe_interval: float


def _open(backend: _Backend, settings: _Settings, bitrate: int) -> av.VideoCodecContext:
    gop = max(1, round(settings.keyframe_interval * settings.fps))
    size = (settings.width, settings.height, settings.fps)
    ctx = low_latency_encoder(backend.name, *size, bitrate, gop)
    ctx.open()
    return ctx


@functools.cache
def hardware_h264_works(width: int = 640, height: int = 480, fps: int = 15) -> bool:
    """Whether ``h264_v4l2m2m`` opens and turns a few frames into an H.264 keyframe carrying
    its SPS; probed once per process and size. Never raises."""
    if "h264_v4l2m2m" not in av.codecs_available:
        log.info("no h264_v4l2m2m in this FFmpeg; using libx264")
        return False
    settings = _Settings(width, height, fps, 1_000_000, 5.0)
    try:
        ctx = _open(V4L2M2M, settings, 500_000)
        packets: list[Packet] = []
        plane = np.zeros((height * 3 // 2, width), np.uint8)
        for i in range(PROBE_FRAMES):
            plane[:height] = (np.arange(width, dtype=np.uint16)[None, :] + i * 8) % 256
            frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
            frame.pts = i * 90_000 // fps
            frame.time_base = VIDEO_TIME_BASE
            packets.extend(ctx.encode(frame))
        packets.extend(ctx.encode(None))
        if not any(p.is_keyframe and _has_sps(bytes(p)) for p in packets):
            log.warning(
                "h264_v4l2m2m gave %d packets but no keyframe with SPS; using libx264", len(packets)
            )
            return False
    except Exception as exc:
        log.warning("h264_v4l2m2m does not work here (%s); using libx264", exc)
        return False
    log.info("h264_v4l2m2m works; using the hardware encoder")
    return True


def _has_sps(data: bytes) -> bool:
    """Whether an Annex B buffer holds a sequence parameter set (NAL type 7)."""
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        if data[i + 3] & 0x1F == 7:
            return True
        i = data.find(b"\x00\x00\x01", i + 3)
    return False


def _choose(name: EncoderName, settings: _Settings) -> _Backend:
    if name == "libx264":
        return LIBX264
    if name == "vp8":
        return LIBVPX
    if hardware_h264_works(settings.width, settings.height, settings.fps):
        return V4L2M2M
    if name == "h264_v4l2m2m":
        log.warning("h264_v4l2m2m was configured but does not work; using libx264")
    return LIBX264


class VideoEncoder:
    """Frames in, packets out (``pts``/``dts`` in a 90 kHz time base, ``is_keyframe`` set).

    Frames of another size or pixel format are converted. The frames' ``pts`` must increase;
    a frame whose ``pts`` does not is given the previous one plus one tick.
    """

    def __init__(
        self,
        encoder: EncoderName = "auto",
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 15,
        bitrate: int = 500_000,
        bitrate_min: int = 100_000,
        bitrate_max: int = 1_500_000,
        keyframe_interval: float = 5.0,
        rebuild_interval: float = REBUILD_INTERVAL,
    ) -> None:
        self.rebuild_interval = rebuild_interval
        self._settings = _Settings(width, height, fps, bitrate_max, keyframe_interval)
        self.bitrate_min, self.bitrate_max = bitrate_min, bitrate_max
        self._backend = _choose(encoder, self._settings)
        self._lock = threading.Lock()
        self._bitrate = self._target = self._clamp(bitrate)
        self._keyframe = False
        self._last_pts: int | None = None
        self._built = time.monotonic()
        self.rebuilds = 0
        self.keyframes = 0
        self._ctx: av.VideoCodecContext | None = self._build()
        log.info(
            "video encoder %s %dx%d@%d at %d bps",
            self._backend.name,
            width,
            height,
            fps,
            self._bitrate,
        )

    @classmethod
    def from_config(cls, config: MediaConfig, encoder: EncoderName | None = None) -> VideoEncoder:
        return cls(
            encoder or config.encoder,
            width=config.width,
            height=config.height,
            fps=config.fps,
            bitrate=config.bitrate,
            bitrate_min=config.bitrate_min,
            bitrate_max=config.bitrate_max,
            keyframe_interval=config.keyframe_interval,
        )

    @property
    def name(self) -> str:
        """The FFmpeg encoder in use: ``libx264``, ``h264_v4l2m2m`` or ``libvpx``."""
        return self._backend.name

    @property
    def codec(self) -> Codec:
        """What the packets hold: ``"h264"`` or ``"vp8"``."""
        return self._backend.codec

    @property
    def bitrate(self) -> int:
        """The bitrate the encoder currently works to, bits/s."""
        return self._bitrate

    def _clamp(self, bps: int) -> int:
        return max(self.bitrate_min, min(self.bitrate_max, int(bps)))

    def _build(self) -> av.VideoCodecContext:
        try:
            return _open(self._backend, self._settings, self._bitrate)
        except Exception as exc:
            raise EncoderError(
                f"cannot open video encoder {self._backend.name!r} at "
                f"{self._settings.width}x{self._settings.height}: {exc}"
            ) from exc

    def request_keyframe(self) -> None:
        """Make the next packet a keyframe."""
        self._keyframe = True

    def set_bitrate(self, bps: int) -> int:
        """Aim for ``bps`` (clamped to ``bitrate_min``..``bitrate_max``); returns the target.
        Applied at the next frame."""
        with self._lock:
            self._target = self._clamp(bps)
            return self._target

    def _apply_bitrate(self) -> None:
        ctx = self._ctx
        assert ctx is not None
        target = self._target
        if target == self._bitrate:
            return
        if self._backend.live_bitrate:
            ctx.bit_rate = target
            self._bitrate = target
            return
        change = abs(target - self._bitrate) / self._bitrate
        if change < REBUILD_CHANGE or time.monotonic() - self._built < self.rebuild_interval:
            return
        log.info(
            "video encoder %s: rebuilding for %d bps (was %d)",
            self._backend.name,
            target,
            self._bitrate,
        )
        self._bitrate = target
        self._ctx = self._build()
        self._built = time.monotonic()
        self.rebuilds += 1

    def _prepare(self, frame: av.VideoFrame) -> av.VideoFrame:
        s = self._settings
        if frame.format.name != "yuv420p" or frame.width != s.width or frame.height != s.height:
            converted = frame.reformat(width=s.width, height=s.height, format="yuv420p")
            converted.pts, converted.time_base = frame.pts, frame.time_base
            frame = converted
        if frame.pts is None or frame.time_base is None:
            raise EncoderError("a frame to encode needs pts and time_base (got None)")
        pts = round(frame.pts * frame.time_base / VIDEO_TIME_BASE)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        frame.pts, frame.time_base = pts, VIDEO_TIME_BASE
        frame.pict_type = PictureType.NONE
        if self._keyframe:
            self._keyframe = False
            frame.pict_type = PictureType.I
        return frame

    def encode(self, frame: av.VideoFrame) -> list[Packet]:
        """The packets for ``frame`` (usually one; the hardware encoder may lag a frame)."""
        with self._lock:
            if self._ctx is None:
                raise EncoderError(f"video encoder {self._backend.name!r} is closed")
            self._apply_bitrate()
            frame = self._prepare(frame)
            try:
                packets = list(self._ctx.encode(frame))
            except av.FFmpegError as exc:
                raise EncoderError(
                    f"{self._backend.name} failed on frame {frame.pts}: {exc}"
                ) from exc
        for packet in packets:
            packet.time_base = VIDEO_TIME_BASE
            if packet.dts is None:
                packet.dts = packet.pts
            if packet.is_keyframe:
                self.keyframes += 1
        return packets

    def close(self) -> None:
        """Release the encoder; safe to call twice."""
        with self._lock:
            self._ctx = None
