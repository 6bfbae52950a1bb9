"""Projecting accepted box events into the case tables, in two steps.

``plan`` needs only the event: it validates the body, seals the ID number and lays out the
rows (pure CPU, so the ingest runs it in a process of its own, beside the one that writes).
``store`` writes a plan inside the ingest transaction and checks what only the database knows
(a case number already taken, a photo for a case that does not exist).
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


Projection = NewCase | NewPhoto


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
