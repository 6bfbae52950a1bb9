"""Records synthetic media in both directions until killed: the subject of the crash test.

Usage: ``python -m tests.edge.media.record_session DIRECTORY``. Prints ``recording <t0>``
(the recording's start on the monotonic clock) once packets flow, then records until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edge.media.config import MediaConfig
from edge.media.encoder import VideoEncoder
from edge.media.recorder import Recorder
from edge.media.sources import SyntheticAudio, SyntheticVideo


async def main(directory: Path) -> None:
    config = MediaConfig(fsync_seconds=0)
    encoder = VideoEncoder.from_config(config, "libx264")
    camera, official = SyntheticVideo.from_config(config), SyntheticVideo.from_config(config)
    mic, speaker = SyntheticAudio(), SyntheticAudio(frequency=660)
    async with Recorder(directory, "session", config) as recorder:

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
            while not recorder.written["local_video"]:  # noqa: ASYNC110 (a counter, polled)
                await asyncio.sleep(0.05)
            print(f"recording {recorder.started_at}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
