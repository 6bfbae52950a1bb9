"""Recording names carry the case and session, so a file a crash left still finds its case."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from pathlib import Path

import pytest

from edge.live.recordings import parse_file_name, recording_name, recover_unfinished
from edge.media.config import MediaConfig
from edge.media.encoder import VideoEncoder
from edge.media.errors import RecordingError
from edge.media.recorder import RecordedFile, Recorder
from edge.media.sources import SyntheticAudio, SyntheticVideo
from tests.edge.live.conftest import Sink

CASE = "510104021-01-261121-0007"


def test_names_round_trip_even_with_dashes_in_the_session() -> None:
    name = recording_name(CASE, "s-1_x-2")
    assert name.stem == f"{CASE}_s-1_x-2"
    assert parse_file_name(f"{name.stem}-003.ts.part") == name
    assert parse_file_name(f"{name.stem}-003.ts") == name
    assert parse_file_name("notes.ts.part") is None
    with pytest.raises(RecordingError, match="bad/session"):
        recording_name(CASE, "bad/session")


async def test_a_file_left_by_a_crash_is_recovered_and_handed_over(tmp_path: Path) -> None:
    """A copy of a recording taken mid-write is what kill -9 leaves on disk."""
    media = MediaConfig(width=320, height=240, fsync_seconds=0.2)
    name = recording_name(CASE, "sess-42")
    live_dir, crashed_dir = tmp_path / "live", tmp_path / "crashed"
    video, audio = SyntheticVideo(320, 240, 15), SyntheticAudio()
    encoder = VideoEncoder("libx264", width=320, height=240, fps=15)
    async with Recorder(live_dir, name.stem, media) as recorder:
        for _ in range(45):  # 3 s
            frame = await video.next_frame()
            for packet in await asyncio.to_thread(encoder.encode, frame):
                recorder.write_local_video(packet)
            for _ in range(3):
                recorder.write_local_audio(await audio.next_frame())
        await asyncio.sleep(0.5)  # the writer catches up
        part = live_dir / f"{name.stem}-001.ts.part"
        crashed_dir.mkdir()
        shutil.copy(part, crashed_dir / part.name)
    sink = Sink()
    done = await recover_unfinished(crashed_dir, sink)
    assert len(done) == 1 and len(sink.added) == 1
    case_no, session_id, rec = sink.added[0]
    assert (case_no, session_id) == (CASE, "sess-42")
    assert rec.path == crashed_dir / f"{name.stem}-001.ts" and rec.path.exists()
    assert 2.0 < rec.duration < 4.0
    assert await recover_unfinished(crashed_dir, sink) == []  # nothing left to recover


async def test_an_unplayable_leftover_stays_where_it_is(tmp_path: Path) -> None:
    junk = tmp_path / f"{CASE}_sess-1-001.ts.part"
    junk.write_bytes(b"\x00" * 1000)

    class Refuse:
        async def add_recording(
            self,
            case_no: str,
            session_id: str,
            rec: RecordedFile,
            *,
            started_at: dt.datetime | None = None,
        ) -> None:
            raise AssertionError("nothing playable to add")

    assert await recover_unfinished(tmp_path, Refuse()) == []
    assert junk.exists()
