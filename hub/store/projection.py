"""Projecting accepted box events into the case tables (inside the ingest transaction)."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from sqlite_utils import Database

from contracts.cases import CASE_REGISTERED, PHOTO_ADDED, CaseRegistered, PhotoAdded
from contracts.events import EventEnvelope
from hub.pii import PiiVault
from runtime.sqlite import insert_row

M = TypeVar("M", bound=BaseModel)


class ProjectionError(Exception):
    """An event's body cannot be applied to the case tables (schema or state)."""


def query_code_hash(case_no: str, code: str) -> str:
    return hashlib.sha256(f"{case_no}:{code}".encode()).hexdigest()


def _body(model: type[M], event: EventEnvelope) -> M:
    try:
        return model.model_validate(event.body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProjectionError(f"body.{where}: {first['msg']}") from None


def timeline(db: Database, now: str, case_no: str, kind: str, actor: str, **detail: object) -> None:
    db.conn.execute(
        "INSERT INTO case_timeline (case_no, ts, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
        [case_no, now, kind, actor, orjson.dumps(detail).decode()],
    )


def project(db: Database, vault: PiiVault, event: EventEnvelope, now: str) -> None:
    """Apply ``event`` to the case tables; ``now`` is the batch's receive time."""
    if event.type == CASE_REGISTERED:
        _registered(db, vault, event, now)
    elif event.type == PHOTO_ADDED:
        body = _body(PhotoAdded, event)
        if db.execute("SELECT 1 FROM cases WHERE case_no = ?", [body.case_no]).fetchone() is None:
            raise ProjectionError(f"photo for unknown case {body.case_no!r}")
        _add_photo(db, body.case_no, body.photo.sha256, body.photo.size, body.photo.mime)
        timeline(db, now, body.case_no, "photo_added", event.node, sha256=body.photo.sha256)
    # Other types are kept in the events table; later versions of the hub project them.


def _registered(db: Database, vault: PiiVault, event: EventEnvelope, now: str) -> None:
    body = _body(CaseRegistered, event)
    form = body.form
    id_enc, id_hmac, id_masked = vault.seal_id(form.id_number)
    row = {
        "case_no": body.case_no,
        "node": event.node,
        "township": body.township,
        "registered_at": body.registered_at.isoformat(),
        "name": form.name,
        "id_enc": id_enc,
        "id_hmac": id_hmac,
        "id_masked": id_masked,
        "phone": form.phone,
        "address": form.address,
        "category": form.category.value,
        "concerned_unit": form.concerned_unit,
        "content": form.content,
        "query_code_hash": query_code_hash(body.case_no, body.query_code),
        "state": "registered",
        "photos_total": 0,
        "photos_verified": 0,
        "complete": int(not body.photos),
        "seq": event.seq,
        "created_at": now,
    }
    try:
        insert_row(db, "cases", row)
    except sqlite3.IntegrityError as exc:  # only this statement is undone; the batch goes on
        unique = "UNIQUE" in str(exc)
        raise ProjectionError(
            f"case {body.case_no!r} already exists" if unique else f"case {body.case_no!r}: {exc}"
        ) from None
    for photo in body.photos:
        _add_photo(db, body.case_no, photo.sha256, photo.size, photo.mime)
    timeline(
        db, now, body.case_no, "registered", event.node, seq=event.seq, photos=len(body.photos)
    )


def _add_photo(db: Database, case_no: str, sha256: str, size: int, mime: str) -> None:
    db.execute(
        "INSERT OR IGNORE INTO case_photos (case_no, sha256, size, mime, verified) "
        "VALUES (?, ?, ?, ?, 0)",
        [case_no, sha256, size, mime],
    )
    db.execute(
        "UPDATE cases SET photos_total = (SELECT count(*) FROM case_photos WHERE case_no = ?), "
        "complete = 0 WHERE case_no = ?",
        [case_no, case_no],
    )
