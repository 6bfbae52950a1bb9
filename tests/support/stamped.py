"""Stamped test pictures and bare libx264 and libvpx encoders, shared by the media tests' peers
(``tests/media/peers.py``) and the live-reception test participant (``tests/support/livepeer.py``).

Every picture carries its frame number and a millisecond clock in its top row
(``contracts.framestamp``), so a receiver can say which frame it decoded and how old it is.
"""

from __future__ import annotations

import fractions
import time
from typing import Any

import av
import numpy as np

from contracts import framestamp


def stamped_frame(
    frame_no: int, width: int = 640, height: int = 480, fps: int = 15, shade: int = 90
) -> av.VideoFrame:
    """A yuv420p picture of ``shade`` with a moving bar, ``frame_no`` and the clock in its top
    row; ``pts`` is the frame number in a 1/``fps`` time base."""
    y = np.full((height, width), shade, np.uint8)
    bar = width // 8
    x = (frame_no * 9) % (width - bar)
    y[height // 4 : height * 3 // 4, x : x + bar] = 220
    u = np.full((height // 2, width // 2), 110, np.uint8)
    v = np.full((height // 2, width // 2), 150, np.uint8)
    framestamp.stamp_yuv420((y, u, v), frame_no, framestamp.clock_ms(time.time()))
    planes = np.concatenate([y, u.reshape(height // 4, width), v.reshape(height // 4, width)])
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.pts = frame_no
    frame.time_base = fractions.Fraction(1, fps)
    return frame


def read_stamp(frame: object) -> tuple[int, int] | None:
    """(frame number, clock ms) stamped in a decoded picture, or ``None``."""
    assert isinstance(frame, av.VideoFrame), f"expected a video frame, got {frame!r}"
    luma = np.asarray(frame.to_ndarray(format="yuv420p")[: frame.height], np.uint8)
    return framestamp.read(luma)


class _Encoder:
    """A bare encoder of stamped pictures; keyframes on request only."""

    def __init__(self, name: str, width: int, height: int, fps: int, bitrate: int) -> None:
        self.time_base = fractions.Fraction(1, fps)
        self.codec = av.CodecContext.create(name, "w")
        self.codec.width, self.codec.height, self.codec.pix_fmt = width, height, "yuv420p"
        self.codec.time_base = self.time_base
        self.codec.framerate = fractions.Fraction(fps, 1)
        self.codec.bit_rate = bitrate

    def encode(self, frame: av.VideoFrame, keyframe: bool) -> list[av.Packet[Any]]:
        frame.pict_type = (
            av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        )
        packets = list(self.codec.encode(frame))
        for packet in packets:
            packet.time_base = self.time_base
        return packets


class X264(_Encoder):
    """libx264 ultrafast/zerolatency; keyframes on request only (and every 1000 frames)."""

    def __init__(
        self, width: int = 640, height: int = 480, fps: int = 15, bitrate: int = 500_000
    ) -> None:
        super().__init__("libx264", width, height, fps, bitrate)
        self.codec.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": "keyint=1000:min-keyint=1000:scenecut=0",
        }


class VP8(_Encoder):
    """libvpx realtime on one thread; keyframes on request only (and every 3000 frames)."""

    def __init__(
        self, width: int = 640, height: int = 480, fps: int = 15, bitrate: int = 500_000
    ) -> None:
        super().__init__("libvpx", width, height, fps, bitrate)
        self.codec.gop_size, self.codec.thread_count = 3000, 1
        self.codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
