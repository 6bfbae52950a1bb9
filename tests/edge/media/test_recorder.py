"""The session recording: plays after kill -9 up to the last 2 s, and is measured and hashed."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import av
import pytest

from contracts import framestamp
from edge.media.config import MediaConfig
from edge.media.encoder import VideoEncoder
from edge.media.errors import RecordingError
from edge.media.recorder import RecordedFile, Recorder, recover, unfinished
from tests.edge.media.record_session import record, record_until_killed


def video_stamps(path: Path, index: int) -> tuple[list[int], float, float]:
    """Frame numbers stamped in video stream ``index``, and its first and last frame times."""
    numbers, times = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[index]):
            stamp = framestamp.read(frame.to_ndarray(format="gray"))
            if stamp is not None and frame.time is not None:
                numbers.append(stamp[0])
                times.append(frame.time)
    return numbers, times[0], times[-1]


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return sum(f.samples for f in container.decode(audio=0)) / 48_000


def test_a_killed_recording_plays_up_to_the_last_two_seconds(tmp_path: Path) -> None:
    started, killed = record_until_killed(tmp_path, 5.0)
    elapsed = killed - started
    [left] = unfinished(tmp_path)
    numbers, first, last = video_stamps(left, 0)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "own video has gaps"
    assert numbers[0] <= 1
    assert elapsed - 2.0 <= last - first <= elapsed + 0.5, (last - first, elapsed)
    remote, r_first, r_last = video_stamps(left, 1)
    assert remote == list(range(remote[0], remote[0] + len(remote)))
    assert r_last - r_first >= elapsed - 2.5
    assert audio_seconds(left) >= elapsed - 2.5
    digest = hashlib.sha256(left.read_bytes()).hexdigest()

    found = recover(left)
    assert found.sha256 == digest
    assert abs(found.duration - elapsed) <= 2.0, (found.duration, elapsed)
    assert found.path == tmp_path / "session-001.ts" and found.path.exists()
    assert unfinished(tmp_path) == []


async def test_close_returns_the_files_hash_and_duration(tmp_path: Path) -> None:
    finished: list[RecordedFile] = []
    encoder = VideoEncoder("libx264")
    recorder = Recorder(tmp_path, "case-1", MediaConfig(), on_file=finished.append)
    async with recorder:
        await record(recorder, 3.0, encoder)
    files = await recorder.close()  # a second close gives the same answer
    assert [f.path.name for f in files] == ["case-1-001.ts"]
    [done] = files
    assert done.sha256 == hashlib.sha256(done.path.read_bytes()).hexdigest()
    assert 2.0 <= done.duration <= 4.0
    assert unfinished(tmp_path) == []
    numbers, first, last = video_stamps(done.path, 0)
    assert numbers == list(range(len(numbers))) and 2.0 <= last - first <= 3.5
    await asyncio.sleep(0)
    assert finished == files


async def test_a_long_recording_continues_in_a_new_file(tmp_path: Path) -> None:
    encoder = VideoEncoder("libx264", keyframe_interval=60)
    config = MediaConfig(segment_seconds=1.0)
    recorder = Recorder(tmp_path, "s", config, request_keyframe=encoder.request_keyframe)
    async with recorder:
        await record(recorder, 3.5, encoder)
    files = await recorder.close()
    assert len(files) >= 2
    stamps = []
    for f in files:
        numbers, _, _ = video_stamps(f.path, 0)
        assert numbers, f"{f.path.name} has no decodable own video"
        stamps += numbers
    # each file starts on a keyframe, so nothing is lost between files
    assert stamps == list(range(len(stamps)))


def test_a_file_that_does_not_play_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "x-001.ts.part"
    junk.write_bytes(os.urandom(50_000))
    with pytest.raises(RecordingError, match=r"x-001\.ts\.part"):
        recover(junk)
    assert junk.exists()
