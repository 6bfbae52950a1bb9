"""Low-latency settings of the video encoders, shared by the box (its camera) and the
hub (the relay's fallback transcoder): no B-frames, no look-ahead, constant bitrate, a fixed
keyframe interval, and every keyframe carrying what a decoder joining there needs."""

from __future__ import annotations

import fractions

import av

ENCODERS = ("libx264", "libvpx", "h264_v4l2m2m")


def low_latency_encoder(
    name: str, width: int, height: int, fps: int, bitrate: int, gop: int
) -> av.VideoCodecContext:
    """An unopened ``name`` encoder (``libx264``, ``libvpx``, or the Pi's ``h264_v4l2m2m``)
    set up for live video: pts in 1/90000, ``bitrate`` bits/s CBR, a keyframe every ``gop``
    frames (and whenever a frame asks for one)."""
    if name not in ENCODERS:
        raise ValueError(f"no low-latency settings for encoder {name!r}")
    ctx = av.CodecContext.create(name, "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 90_000)
    ctx.framerate = fractions.Fraction(fps, 1)
    ctx.bit_rate = bitrate
    ctx.gop_size = gop
    ctx.max_b_frames = 0
    if name == "libx264":
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "forced-idr": "1",
            # CBR (VBV rate = bit_rate): the only mode in which x264 follows a new bit_rate
            # on the fly (x264's ratecontrol.c: "if the stream starts as CBR, keep it CBR")
            "maxrate": str(bitrate),
            "bufsize": str(bitrate),
            "x264-params": f"repeat-headers=1:annexb=1:keyint={gop}:min-keyint={gop}"
            ":scenecut=0:bframes=0",
        }
    elif name == "libvpx":
        ctx.qmin, ctx.qmax = 4, 56
        ctx.thread_count = 1  # FFmpeg's automatic threads make libvpx spin: ~10x the CPU
        ctx.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "lag-in-frames": "0",
            "error-resilient": "1",
            "auto-alt-ref": "0",
            "maxrate": str(bitrate),
            "minrate": str(bitrate),
            "bufsize": str(bitrate),
        }
    else:  # the hardware encoder: SPS/PPS before every keyframe, for joining decoders
        ctx.options = {"repeat_sequence_header": "1"}
    return ctx
