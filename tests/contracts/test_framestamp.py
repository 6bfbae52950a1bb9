"""The pixel frame stamp survives a real H.264 round trip."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from contracts import framestamp


def test_a_stamp_reads_back_from_raw_pixels() -> None:
    image = np.full((480, 640, 3), 90, np.uint8)
    framestamp.stamp(image, 70_000, 2**32 + 1234)
    assert framestamp.read(image) == (70_000 % 65_536, 1234)


def test_a_stamp_survives_h264_at_a_low_bitrate() -> None:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 480, "yuv420p"
    encoder.bit_rate = 300_000
    encoder.time_base, encoder.framerate = Fraction(1, 15), Fraction(15)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    decoder = av.CodecContext.create("h264", "r")
    ys, xs = np.mgrid[0:480, 0:640]
    seen = []
    for n in range(30):  # moving diagonal bars and a noisy band: a picture that keeps changing
        picture = (((xs + ys + 9 * n) // 20) % 2 * 200).astype(np.uint8)
        picture[240:] = np.random.default_rng(n).integers(0, 255, (240, 640), dtype=np.uint8)
        image = np.stack([picture] * 3, axis=2)
        framestamp.stamp(image, n, 1000 + 67 * n)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = n, encoder.time_base
        for packet in encoder.encode(frame):
            for out in decoder.decode(packet):
                seen.append(framestamp.read(out.to_ndarray(format="gray")))
    assert seen and seen == [(n, 1000 + 67 * n) for n in range(len(seen))]


def test_a_damaged_or_missing_stamp_reads_as_none() -> None:
    assert framestamp.read(np.full((480, 640), 128, np.uint8)) is None
    with pytest.raises(ValueError, match="at least 192 px wide"):
        framestamp.read(np.zeros((100, 100), np.uint8))
