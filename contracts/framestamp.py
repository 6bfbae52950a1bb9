"""A frame number and a millisecond clock written into a video frame's pixels, so that every
hop (box, relay, browser, test) can tell which frame it holds and how old it is after lossy
encoding, without any side channel.

The stamp is a row of 48 square blocks across the top of the picture: bits 0-15 the frame number
(modulo 65,536), bits 16-47 the sender's clock in milliseconds (modulo 2**32). A set bit is a
white block, a clear bit a black one, and each block is read back by the mean of its centre, so
H.264 and VP8 at any usable bitrate leave it intact. The picture needs to be at least
``48 * block`` pixels wide (``block`` 8 at 480 px, 13 at 640 px).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BITS = 48
FRAME_BITS = 16
CLOCK_BITS = 32
Image = npt.NDArray[np.uint8]


def block_size(width: int) -> int:
    """The side of one stamp block for a picture ``width`` pixels wide."""
    size = width // BITS
    if size < 4:
        raise ValueError(f"a frame stamp needs a picture at least {BITS * 4} px wide, got {width}")
    return size


def _bits(frame_no: int, clock_ms: int) -> list[bool]:
    value = (frame_no % (1 << FRAME_BITS)) | ((clock_ms % (1 << CLOCK_BITS)) << FRAME_BITS)
    return [bool(value >> i & 1) for i in range(BITS)]


def stamp(image: Image, frame_no: int, clock_ms: int) -> None:
    """Write the stamp into ``image`` (H x W or H x W x C, uint8) in place."""
    size = block_size(image.shape[1])
    for i, bit in enumerate(_bits(frame_no, clock_ms)):
        image[:size, i * size : (i + 1) * size] = 255 if bit else 0


def stamp_yuv420(planes: tuple[Image, Image, Image], frame_no: int, clock_ms: int) -> None:
    """Write the stamp into the luma plane of a YUV 4:2:0 picture and make the blocks neutral
    grey in the chroma planes (``av.VideoFrame`` of format ``yuv420p``)."""
    y, u, v = planes
    stamp(y, frame_no, clock_ms)
    size = block_size(y.shape[1])
    u[: (size + 1) // 2, : BITS * size // 2] = 128
    v[: (size + 1) // 2, : BITS * size // 2] = 128


def read(luma: Image) -> tuple[int, int] | None:
    """``(frame_no, clock_ms)`` from a picture's luma (or grey) plane; ``None`` when the top
    row does not hold a clean stamp (a block neither clearly black nor clearly white)."""
    if luma.ndim == 3:
        luma = luma.mean(axis=2)
    size = block_size(luma.shape[1])
    margin = size // 4
    value = 0
    for i in range(BITS):
        block = luma[margin : size - margin, i * size + margin : (i + 1) * size - margin]
        level = float(block.mean())
        if 64 < level < 192:
            return None
        if level >= 192:
            value |= 1 << i
    return value & ((1 << FRAME_BITS) - 1), value >> FRAME_BITS


def clock_ms(seconds: float) -> int:
    """A clock reading in the stamp's unit (milliseconds, wrapped to 32 bits)."""
    return int(seconds * 1000) % (1 << CLOCK_BITS)


def age_ms(sent: int, now: int) -> int:
    """Milliseconds from a stamp's clock ``sent`` to ``now`` (both from :func:`clock_ms`),
    across the 32-bit wrap."""
    return (now - sent) % (1 << CLOCK_BITS)
