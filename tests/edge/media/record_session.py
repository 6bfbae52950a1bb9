"""Synthetic media in both directions fed to a recorder: ``feed`` for the recording tests, and,
run as a program, the subject of the crash test.

Usage: ``python -m tests.edge.media.record_session DIRECTORY``. Prints ``recording <t0>``
(the recording's start on the monotonic clock) once packets flow, then records until killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.media.config import MediaConfig
from edge.media.encoder import VideoEncoder
from edge.media.recorder import Recorder
from edge.media.sources import SyntheticAudio, SyntheticVideo


async def feed(
    recorder: Recorder, encoder: VideoEncoder, config: MediaConfig | None = None
) -> None:
    """Feed ``recorder`` until cancelled, as a call does: the box's camera as H.264 packets
    and its 440 Hz microphone, the official's picture as frames and a 660 Hz tone."""
    config = config or MediaConfig()
    camera, official = SyntheticVideo.from_config(config), SyntheticVideo.from_config(config)
    mic, speaker = SyntheticAudio(), SyntheticAudio(frequency=660)

    async def own_video() -> None:
        while True:
            frame = await camera.next_frame()
            for packet in await asyncio.to_thread(encoder.encode, frame):
                recorder.write_local_video(packet)

    async def remote_video() -> None:
        while True:
            recorder.write_remote_video(await official.next_frame())

    async def audio() -> None:
        while True:
            recorder.write_local_audio(await mic.next_frame())
            recorder.write_remote_audio(await speaker.next_frame())

    async with asyncio.TaskGroup() as group:
        group.create_task(own_video())
        group.create_task(remote_video())
        group.create_task(audio())


async def record(recorder: Recorder, seconds: float, encoder: VideoEncoder) -> None:
    """``feed`` ``recorder`` for ``seconds``."""
    task = asyncio.create_task(feed(recorder, encoder))
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def record_until_killed(directory: Path, seconds: float) -> tuple[float, float]:
    """Run this module as a process recording into ``directory`` and kill it with SIGKILL
    ``seconds`` after its recording started; returns (start, kill) on the monotonic clock."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.edge.media.record_session", str(directory)],
        cwd=Path(__file__).parents[3],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("recording "), line
        started = float(line.split()[1])
        time.sleep(seconds)
        killed = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    return started, killed


async def main(directory: Path) -> None:
    config = MediaConfig(fsync_seconds=0)
    encoder = VideoEncoder.from_config(config, "libx264")
    async with Recorder(directory, "session", config) as recorder:
        task = asyncio.create_task(feed(recorder, encoder, config))
        while not recorder.written["local_video"]:  # noqa: ASYNC110 (a counter, polled)
            await asyncio.sleep(0.05)
        print(f"recording {recorder.started_at}", flush=True)
        await task


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
