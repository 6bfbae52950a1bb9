"""Projecting ``case.recording_added`` at the hub: a case is complete only once every photo
and every recording of it has verified, whichever verifies last (a real hub database and a
real blob store in ``tmp_path``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts.cases import CASE_REGISTERED, CaseRegistered, PhotoRef, validate_case_form
from contracts.chain import GENESIS
from contracts.events import EventEnvelope
from contracts.recordings import RECORDING_ADDED, RecordedStream, RecordingAdded
from hub.api.recordings import verify_recordings
from hub.blobs.store import BlobStore
from hub.blobs.verifier import verify_photos
from hub.pii import PiiVault
from hub.store.db import HubStore, now_iso
from hub.store.projection import ProjectionError, plan, store
from tests.support.events import FORM, id_number

CASE_NO = "510104021-12-261122-0001"
NODE = "box-rec"


def event(seq: int, type: str, body: dict[str, object]) -> EventEnvelope:
    return EventEnvelope.create(
        node=NODE, seq=seq, type=type, ts=dt.datetime.now(dt.UTC), body=body, prev_hash=GENESIS
    )


def registered(photo: bytes) -> EventEnvelope:
    form = validate_case_form({**FORM, "id_number": id_number(3)})
    assert not isinstance(form, dict)
    body = CaseRegistered(
        case_no=CASE_NO,
        township="510104021",
        registered_at=dt.datetime.now(dt.UTC),
        form=form,
        query_code="123456",
        photos=[
            PhotoRef(sha256=hashlib.sha256(photo).hexdigest(), size=len(photo), mime="image/jpeg")
        ],
    )
    return event(1, CASE_REGISTERED, body.model_dump(mode="json"))


def recording_added(data: bytes, case_no: str = CASE_NO) -> EventEnvelope:
    body = RecordingAdded(
        case_no=case_no,
        session_id="sess-1",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        duration_s=3.0,
        started_at=dt.datetime.now(dt.UTC),
        streams=[
            RecordedStream(
                index=0, side="box", kind="video", codec="h264", packets=45, duration_s=3.0
            )
        ],
    )
    return event(2, RECORDING_ADDED, body.model_dump(mode="json"))


async def put_blob(blobs: BlobStore, data: bytes) -> None:
    sha = hashlib.sha256(data).hexdigest()

    async def body() -> AsyncIterator[bytes]:
        yield data

    await blobs.create(sha, len(data), node=NODE)
    assert (await blobs.append(sha, 0, body(), len(data), node=NODE)).complete


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubStore]:
    async with HubStore(tmp_path / "hub.db") as s:
        yield s


async def project(hub: HubStore, e: EventEnvelope) -> None:
    projection = plan(PiiVault(b"k" * 32), e)
    assert projection is not None

    def write(db: object) -> None:
        store(db, projection, now_iso())  # type: ignore[arg-type]

    await hub.run(write)


async def state(hub: HubStore) -> tuple[int, int, int, int, int]:
    return await hub.run(
        lambda db: db.execute(
            "SELECT photos_total, photos_verified, recordings_total, recordings_verified, "
            "complete FROM cases WHERE case_no = ?",
            [CASE_NO],
        ).fetchone()
    )


async def test_the_case_completes_only_when_photos_and_recordings_verify(
    hub: HubStore, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    photo, video = os.urandom(5000), os.urandom(20_000)
    await project(hub, registered(photo))
    await project(hub, recording_added(video))
    assert await state(hub) == (1, 0, 1, 0, 0)

    await put_blob(blobs, photo)  # the photo verifies first: not complete yet
    assert await verify_photos(hub, blobs) == 1
    assert await state(hub) == (1, 1, 1, 0, 0)
    assert await verify_recordings(hub, blobs) == []

    await put_blob(blobs, video)
    assert await verify_recordings(hub, blobs) == [hashlib.sha256(video).hexdigest()]
    assert await state(hub) == (1, 1, 1, 1, 1)
    timeline = await hub.run(
        lambda db: db.execute(
            "SELECT kind, detail FROM case_timeline WHERE case_no = ? ORDER BY id", [CASE_NO]
        ).fetchall()
    )
    assert [k for k, _ in timeline] == ["registered", "recording_added", "recording_verified"]
    assert json.loads(timeline[1][1])["sides"] == ["box"]
    assert json.loads(timeline[2][1]) == {
        "sha256": hashlib.sha256(video).hexdigest(),
        "complete": True,
    }


async def test_a_recording_verified_first_waits_for_the_photos(
    hub: HubStore, tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    photo, video = os.urandom(5000), os.urandom(20_000)
    await project(hub, registered(photo))
    await project(hub, recording_added(video))
    await put_blob(blobs, video)
    await verify_recordings(hub, blobs)
    assert await state(hub) == (1, 0, 1, 1, 0)
    await put_blob(blobs, photo)
    await verify_photos(hub, blobs)
    assert await state(hub) == (1, 1, 1, 1, 1)


async def test_a_recording_of_an_unknown_case_is_refused(hub: HubStore) -> None:
    with pytest.raises(
        ProjectionError, match="recording for unknown case '510104021-12-261122-0009'"
    ):
        await project(hub, recording_added(b"x" * 100, "510104021-12-261122-0009"))
