"""Recordings on the box: sealed into the hash chain with their file's measure, staged for
upload, and uploaded resumably (real Recorder files, a real blob server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from contracts.cases import validate_case_form
from contracts.chain import verify_chain
from contracts.events import EventEnvelope
from contracts.recordings import RECORDING_ADDED, RecordingAdded
from edge.media.config import MediaConfig
from edge.media.encoder import VideoEncoder
from edge.media.recorder import RecordedFile, Recorder, recover, unfinished
from edge.store.db import EdgeStore, StagedBlob
from edge.sync.photos import BlobUploader
from edge.sync.uploader import RetryPolicy
from hub.blobs import BlobStore, blob_routes
from runtime.http import serve
from tests.edge.media.record_session import record, record_until_killed
from tests.support.events import FORM, id_number

TOWNSHIP = "510104021"
QUICK = RetryPolicy(attempts=6, backoff_s=0.01, max_backoff_s=0.05, sock_read_s=5.0)
"""Backoff shrunk from 0.5-30 s: a test's upload is never waiting out a long pause."""


async def make_recording(directory: Path, name: str, seconds: float) -> RecordedFile:
    """A real recording of ``seconds`` of both directions: the box's camera as H.264 packets
    and its microphone, the official's picture as frames and a second tone."""
    encoder = VideoEncoder("libx264")
    recorder = Recorder(directory, name, MediaConfig())
    async with recorder:
        await record(recorder, seconds, encoder)
    encoder.close()
    [done] = await recorder.close()
    return done


def crashed_recording(directory: Path, seconds: float) -> tuple[RecordedFile, float]:
    """Record in a process killed with SIGKILL after ``seconds``, cut the left ``.part``
    file in the middle of a transport packet (as a torn last write leaves it) and
    ``recover`` it; returns the file and the seconds it recorded before the kill."""
    started, killed = record_until_killed(directory, seconds)
    elapsed = killed - started
    [left] = unfinished(directory)
    size = left.stat().st_size
    with left.open("r+b") as f:
        f.truncate(size - size % 188 - 100)  # 88 bytes into the last whole packet
    return recover(left), elapsed


async def registered_case(store: EdgeStore, n: int = 1) -> str:
    form = validate_case_form({**FORM, "id_number": id_number(n)})
    assert not isinstance(form, dict), form
    return (await store.register_case(form, TOWNSHIP, 12)).case_no


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> RecordedFile:
    return asyncio.run(make_recording(tmp_path_factory.mktemp("rec"), "session", 3.0))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeStore]:
    async with EdgeStore(tmp_path / "edge.db", "box-rec") as s:
        yield s


def outbox(store_path: Path) -> list[EventEnvelope]:
    import sqlite3

    with sqlite3.connect(store_path) as db:
        rows = db.execute("SELECT payload FROM outbox ORDER BY seq").fetchall()
    return [EventEnvelope.model_validate(json.loads(p)) for (p,) in rows]


async def test_a_recording_is_sealed_into_the_chain_and_staged(
    store: EdgeStore, recording: RecordedFile
) -> None:
    case_no = await registered_case(store)
    started = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
    staged = await store.add_recording(case_no, "sess-1", recording, started_at=started)
    assert staged.added and staged.seq == 2

    events = outbox(store.path)
    assert [e.type for e in events] == ["case.registered", RECORDING_ADDED]
    assert verify_chain([e.chain_record() for e in events]) is None
    body = RecordingAdded.model_validate(events[1].body)
    assert (body.case_no, body.session_id, body.sha256) == (case_no, "sess-1", recording.sha256)
    assert body.size == recording.path.stat().st_size and body.mime == "video/mp2t"
    assert body.started_at == started and abs(body.duration_s - 3.0) < 0.5
    assert [(s.side, s.kind, s.codec) for s in body.streams] == [
        ("box", "video", "h264"),
        ("box", "audio", "aac"),
        ("official", "video", "h264"),
        ("official", "audio", "aac"),
    ]
    for stream in body.streams:  # every stream holds about three seconds
        assert stream.packets > 20 and abs(stream.duration_s - 3.0) < 0.5, stream
    assert body.sides() == ["box", "official"]

    assert await store.blobs_to_upload() == [
        StagedBlob("recording", recording.sha256, recording.path, "video/mp2t")
    ]

    again = await store.add_recording(case_no, "sess-1", recording)
    assert (again.added, again.seq) == (False, 2)
    assert len(outbox(store.path)) == 2


async def test_a_recording_belongs_to_one_known_case(
    store: EdgeStore, recording: RecordedFile
) -> None:
    first = await registered_case(store, 1)
    second = await registered_case(store, 2)
    await store.add_recording(first, "sess-1", recording)
    with pytest.raises(ValueError, match=f"already in case '{first}'"):
        await store.add_recording(second, "sess-2", recording)
    with pytest.raises(KeyError, match="510104021-12-990101-0001"):
        await store.add_recording("510104021-12-990101-0001", "sess-3", recording)
    assert [e.type for e in outbox(store.path)] == [
        "case.registered",
        "case.registered",
        RECORDING_ADDED,
    ]


async def test_a_crashed_recording_recovers_and_is_sealed(store: EdgeStore, tmp_path: Path) -> None:
    rec, elapsed = await asyncio.to_thread(crashed_recording, tmp_path / "rec", 3.0)
    assert rec.path.suffix == ".ts" and rec.size % 188 != 0
    case_no = await registered_case(store)
    await store.add_recording(case_no, "sess-9", rec)
    body = RecordingAdded.model_validate(outbox(store.path)[-1].body)
    assert body.sha256 == rec.sha256 and abs(body.duration_s - elapsed) <= 2.0
    box_video = body.streams[0]
    assert box_video.packets > 15 and abs(box_video.duration_s - elapsed) <= 2.0


async def test_an_interrupted_upload_resumes_where_the_hub_stopped(
    store: EdgeStore, recording: RecordedFile, tmp_path: Path
) -> None:
    """The uploader is stopped (as by a power cut) part-way through a recording; a new one
    continues from the hub's offset instead of starting over, and the file verifies."""
    blobs = BlobStore(tmp_path / "hub")
    patches: list[int] = []

    @web.middleware
    async def note(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "PATCH":
            patches.append(int(request.headers["Upload-Offset"]))
        return await handler(request)

    app = web.Application(middlewares=[note])
    app.add_routes(blob_routes(blobs, lambda r: "box-rec"))
    case_no = await registered_case(store)
    await store.add_recording(case_no, "sess-1", recording)
    size = recording.size
    assert size > 200_000, size

    async with serve(app, "127.0.0.1", 0) as port:
        url = f"http://127.0.0.1:{port}"
        slow = BlobUploader("box-rec", store, rate_bps=size // 4, retry=QUICK)
        slow.configure(url, "token")
        task = asyncio.create_task(slow.run())
        deadline = time.monotonic() + 20
        while (status := await blobs.status(recording.sha256)) is None or status.offset < 30_000:
            assert time.monotonic() < deadline, "the upload never got going"
            assert not task.done(), task
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        held = await blobs.status(recording.sha256)
        assert held is not None and 0 < held.offset < size and not held.complete
        assert await store.blobs_to_upload() != []
        patches.clear()

        fresh = BlobUploader("box-rec", store, rate_bps=None, retry=QUICK)
        fresh.configure(url, "token")
        task = asyncio.create_task(fresh.run())
        deadline = time.monotonic() + 20
        while await store.blobs_to_upload() != []:
            assert time.monotonic() < deadline, "the upload never finished"
            assert not task.done(), task
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert patches and patches[0] == held.offset, (patches, held.offset)
    assert fresh.uploaded == 1
    done = blobs.path_of(recording.sha256)
    assert done is not None and done.read_bytes() == recording.path.read_bytes()
