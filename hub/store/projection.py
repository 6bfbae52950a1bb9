"""Projecting accepted box events into the case tables, in two steps.

``plan`` needs only the event: it validates the body, seals the ID number and lays out the
rows (pure CPU, so the ingest runs it in a process of its own, beside the one that writes).
``store`` writes a plan inside the ingest transaction and checks what only the database knows
(a case number already taken, a photo for a case that does not exist).

A case is complete when every photo and every recording of it has verified at the hub: a
new photo or recording makes it incomplete; ``hub.blobs.verifier`` marks photos verified and
:func:`mark_recordings_verified` recordings, each recomputing ``complete`` (migration
``0012_recordings`` adds a trigger so the photo verifier cannot complete a case whose
recordings are still missing).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping
from typing import NamedTuple, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from sqlite_utils import Database

from contracts.cases import CASE_REGISTERED, PHOTO_ADDED, CaseRegistered, PhotoAdded, PhotoRef
from contracts.events import EventEnvelope
from contracts.recordings import RECORDING_ADDED, RecordingAdded
from hub.pii import PiiVault

M = TypeVar("M", bound=BaseModel)

CASE_COLUMNS = (
    "case_no, node, township, registered_at, name, id_enc, id_hmac, id_masked, phone, address, "
    "category, concerned_unit, content, query_code_hash, state, photos_total, photos_verified, "
    "complete, seq, created_at"
)
_INSERT_CASE = f"INSERT INTO cases ({CASE_COLUMNS}) VALUES ({', '.join('?' * 20)})"


class ProjectionError(Exception):
    """An event's body cannot be applied to the case tables (schema or state)."""


Photo = tuple[str, int, str]
"""(sha256, size, mime) of a photo reference."""


class NewCase(NamedTuple):
    """A ``case.registered`` event laid out as rows."""

    case_no: str
    actor: str
    values: tuple[object, ...]
    """The ``cases`` row in ``CASE_COLUMNS`` order, without ``created_at``."""
    photos: tuple[Photo, ...]
    detail: str
    """The timeline entry's JSON."""


class NewPhoto(NamedTuple):
    """A ``case.photo_added`` event laid out as rows."""

    case_no: str
    actor: str
    photo: Photo
    detail: str


class NewRecording(NamedTuple):
    """A ``case.recording_added`` event laid out as a ``case_recordings`` row."""

    case_no: str
    actor: str
    values: tuple[object, ...]
    """``case_no, sha256, session_id, node, seq, size, mime, duration_s, started_at, streams``."""
    detail: str


Projection = NewCase | NewPhoto | NewRecording

_INSERT_RECORDING = (
    "INSERT OR IGNORE INTO case_recordings (case_no, sha256, session_id, node, seq, size, mime, "
    "duration_s, started_at, streams, verified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
)


def query_code_hash(case_no: str, code: str) -> str:
    return hashlib.sha256(f"{case_no}:{code}".encode()).hexdigest()


def _body(model: type[M], event: EventEnvelope) -> M:
    try:
        return model.model_validate(event.body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProjectionError(f"body.{where}: {first['msg']}") from None


def _photo(ref: PhotoRef) -> Photo:
    return (ref.sha256, ref.size, ref.mime)


def plan(vault: PiiVault, event: EventEnvelope) -> Projection | None:
    """The rows ``event`` projects to (``None``: a type kept in the events table only, for
    later versions of the hub to project); raises ``ProjectionError`` for a bad body."""
    if event.type == CASE_REGISTERED:
        body = _body(CaseRegistered, event)
        form = body.form
        id_enc, id_hmac, id_masked = vault.seal_id(form.id_number)
        values = (
            body.case_no,
            event.node,
            body.township,
            body.registered_at.isoformat(),
            form.name,
            id_enc,
            id_hmac,
            id_masked,
            form.phone,
            form.address,
            form.category.value,
            form.concerned_unit,
            form.content,
            query_code_hash(body.case_no, body.query_code),
            "registered",
            0,
            0,
            int(not body.photos),
            event.seq,
        )
        photos = tuple(_photo(p) for p in body.photos)
        detail = timeline_detail({"seq": event.seq, "photos": len(photos)})
        return NewCase(body.case_no, event.node, values, photos, detail)
    if event.type == PHOTO_ADDED:
        added = _body(PhotoAdded, event)
        detail = timeline_detail({"sha256": added.photo.sha256})
        return NewPhoto(added.case_no, event.node, _photo(added.photo), detail)
    if event.type == RECORDING_ADDED:
        rec = _body(RecordingAdded, event)
        streams = [s.model_dump(mode="json") for s in rec.streams]
        row: tuple[object, ...] = (
            rec.case_no,
            rec.sha256,
            rec.session_id,
            event.node,
            event.seq,
            rec.size,
            rec.mime,
            rec.duration_s,
            rec.started_at.isoformat(),
            orjson.dumps(streams).decode(),
        )
        detail = timeline_detail(
            {
                "sha256": rec.sha256,
                "session_id": rec.session_id,
                "duration_s": rec.duration_s,
                "sides": rec.sides(),
            }
        )
        return NewRecording(rec.case_no, event.node, row, detail)
    return None


def store(db: Database, projection: Projection, now: str) -> None:
    """Write ``projection``; ``now`` is the batch's receive time. Raises ``ProjectionError``
    (and writes nothing) when the database refuses it."""
    conn = db.conn
    if isinstance(projection, NewCase):
        try:
            conn.execute(_INSERT_CASE, (*projection.values, now))
        except sqlite3.IntegrityError as exc:  # only this statement is undone; the batch goes on
            unique = "UNIQUE" in str(exc)
            case = projection.case_no
            raise ProjectionError(
                f"case {case!r} already exists" if unique else f"case {case!r}: {exc}"
            ) from None
        for photo in projection.photos:
            _add_photo(conn, projection.case_no, photo)
        kind = "registered"
    elif isinstance(projection, NewRecording):
        if not conn.execute(
            "SELECT 1 FROM cases WHERE case_no = ?", [projection.case_no]
        ).fetchone():
            raise ProjectionError(f"recording for unknown case {projection.case_no!r}")
        conn.execute(_INSERT_RECORDING, projection.values)
        _count_recordings(conn, projection.case_no)
        kind = "recording_added"
    else:
        if conn.execute("SELECT 1 FROM cases WHERE case_no = ?", [projection.case_no]).fetchone():
            _add_photo(conn, projection.case_no, projection.photo)
        else:
            raise ProjectionError(f"photo for unknown case {projection.case_no!r}")
        kind = "photo_added"
    conn.execute(
        "INSERT INTO case_timeline (case_no, ts, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
        [projection.case_no, now, kind, projection.actor, projection.detail],
    )


def timeline_detail(detail: Mapping[str, object]) -> str:
    return orjson.dumps(detail).decode()


def _add_photo(conn: sqlite3.Connection, case_no: str, photo: Photo) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO case_photos (case_no, sha256, size, mime, verified) "
        "VALUES (?, ?, ?, ?, 0)",
        [case_no, *photo],
    )
    conn.execute(
        "UPDATE cases SET photos_total = (SELECT count(*) FROM case_photos WHERE case_no = ?), "
        "complete = 0 WHERE case_no = ?",
        [case_no, case_no],
    )


def _count_recordings(conn: sqlite3.Connection, case_no: str) -> None:
    """Recount ``case_no``'s recordings and recompute ``complete`` from photos and recordings."""
    conn.execute(
        "UPDATE cases SET "
        "recordings_total = (SELECT count(*) FROM case_recordings WHERE case_no = :c), "
        "recordings_verified = (SELECT count(*) FROM case_recordings "
        "WHERE case_no = :c AND verified = 1) WHERE case_no = :c",
        {"c": case_no},
    )
    conn.execute(
        "UPDATE cases SET complete = (photos_verified = photos_total "
        "AND recordings_verified = recordings_total) WHERE case_no = ?",
        [case_no],
    )


def pending_recordings(db: Database) -> list[str]:
    """SHA-256 of every recording not yet verified."""
    return [
        r[0] for r in db.execute("SELECT DISTINCT sha256 FROM case_recordings WHERE verified = 0")
    ]


def mark_recordings_verified(db: Database, shas: list[str], now: str) -> list[str]:
    """Mark the recordings ``shas`` (whose blobs are complete) verified, recount their cases
    and note each on the case timeline (``recording_verified``; ``complete`` in the detail
    when the case became complete with it). Call inside a transaction; returns the cases
    touched."""
    conn = db.conn
    cases: list[str] = []
    for sha in shas:
        rows = conn.execute(
            "SELECT case_no FROM case_recordings WHERE sha256 = ? AND verified = 0", [sha]
        ).fetchall()
        conn.execute(
            "UPDATE case_recordings SET verified = 1, verified_at = ? "
            "WHERE sha256 = ? AND verified = 0",
            [now, sha],
        )
        for (case_no,) in rows:
            _count_recordings(conn, case_no)
            complete = conn.execute(
                "SELECT complete FROM cases WHERE case_no = ?", [case_no]
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO case_timeline (case_no, ts, kind, actor, detail) "
                "VALUES (?, ?, 'recording_verified', 'hub', ?)",
                [case_no, now, timeline_detail({"sha256": sha, "complete": bool(complete)})],
            )
            cases.append(case_no)
    return cases
