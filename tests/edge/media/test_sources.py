"""The synthetic sources pace in real time; a missing device is an error, not a crash."""

from __future__ import annotations

import asyncio
import time

import pytest

from contracts import framestamp
from edge.media.errors import CameraUnavailable, MicrophoneUnavailable
from edge.media.sources import CameraVideo, MicrophoneAudio, SyntheticAudio, SyntheticVideo
from edge.media.tracks import SourceTrack


async def test_synthetic_video_paces_at_its_fps_with_consecutive_stamps() -> None:
    source = SyntheticVideo(640, 480, fps=15)
    stamps, pts = [], []
    start = time.monotonic()
    while time.monotonic() - start < 2.0:
        frame = await source.next_frame()
        assert (frame.width, frame.height, frame.format.name) == (640, 480, "yuv420p")
        stamp = framestamp.read(frame.to_ndarray(format="gray"))
        assert stamp is not None
        stamps.append(stamp)
        pts.append(frame.pts * frame.time_base)
    elapsed = time.monotonic() - start
    assert abs(len(stamps) - elapsed * 15) <= 4, f"{len(stamps)} frames in {elapsed:.2f} s"
    assert [n for n, _ in stamps] == list(range(len(stamps)))
    clocks = [c for _, c in stamps]
    assert 1500 <= framestamp.age_ms(clocks[0], clocks[-1]) <= 2500
    assert pts == sorted(pts) and float(pts[1] - pts[0]) == pytest.approx(1 / 15, abs=1e-4)
    await source.close()
    await source.close()


async def test_synthetic_pattern_moves() -> None:
    source = SyntheticVideo(640, 480, fps=30)
    a = (await source.next_frame()).to_ndarray(format="gray")
    b = (await source.next_frame()).to_ndarray(format="gray")
    assert float(abs(a[40:].astype(int) - b[40:].astype(int)).mean()) > 1.0


async def test_synthetic_audio_is_20ms_frames_of_48khz_s16() -> None:
    source = SyntheticAudio()
    frames = [await source.next_frame() for _ in range(10)]
    assert {(f.samples, f.sample_rate, f.format.name) for f in frames} == {(960, 48000, "s16")}
    assert [f.pts for f in frames] == [i * 960 for i in range(10)]
    assert int(abs(frames[3].to_ndarray()).max()) > 5000  # a tone, not silence


async def test_a_missing_camera_is_a_clear_error_and_the_loop_keeps_running() -> None:
    camera = CameraVideo("/dev/video-does-not-exist")
    with pytest.raises(CameraUnavailable, match="/dev/video-does-not-exist"):
        await asyncio.wait_for(camera.next_frame(), 10)
    assert camera.state == "unavailable"
    assert camera.error is not None and "/dev/video-does-not-exist" in camera.error
    # a track over the missing camera keeps sending (black) frames instead of ending
    track = SourceTrack(camera)
    frame = await asyncio.wait_for(track.recv(), 5)
    assert frame.width == 640
    assert track.readyState == "live"
    await camera.close()
    await camera.close()
    assert camera.state == "closed"


async def test_a_missing_microphone_is_a_clear_error() -> None:
    microphone = MicrophoneAudio("hw:97,0")
    with pytest.raises(MicrophoneUnavailable, match="hw:97,0"):
        await asyncio.wait_for(microphone.next_frame(), 10)
    assert microphone.state == "unavailable"
    await microphone.close()
    await microphone.close()
