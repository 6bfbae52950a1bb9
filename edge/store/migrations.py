"""Named, transactional schema migrations of the box's database."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("xfv-edge")


@migrations(name="0001_meta")
def _meta(db: Database) -> None:
    db.table("meta").create({"key": str, "value": int}, pk="key")
    db.table("meta").insert({"key": "bd_seq", "value": 0})


@migrations(name="0002_cases_outbox")
def _cases_outbox(db: Database) -> None:
    db.table("meta").insert({"key": "acked_through", "value": 0})
    db.table("outbox").create(
        {"seq": int, "type": str, "ts": str, "payload": str, "hash": str},
        pk="seq",
        not_null={"type", "ts", "payload", "hash"},
    )
    db.table("cases").create(
        {
            "case_no": str,
            "registered_at": str,
            "name": str,
            "id_number": str,
            "phone": str,
            "address": str,
            "category": str,
            "concerned_unit": str,
            "content": str,
        },
        pk="case_no",
        not_null={"registered_at", "name", "id_number", "category", "content"},
    )
    db.table("case_counter").create({"day": str, "n": int}, pk="day")
    db.table("photos").create(
        {
            "sha256": str,
            "case_no": str,
            "path": str,
            "size": int,
            "mime": str,
            "taken_at": str,
            "uploaded": int,
        },
        pk="sha256",
        not_null={"path", "size", "mime", "taken_at", "uploaded"},
    )


@migrations(name="0003_recordings")
def _recordings(db: Database) -> None:
    """Session recording files, each sealed into the chain by its ``case.recording_added``
    event and staged for upload until the hub has verified it."""
    db.table("recordings").create(
        {
            "sha256": str,
            "case_no": str,
            "session_id": str,
            "path": str,
            "size": int,
            "mime": str,
            "duration_s": float,
            "started_at": str,
            "seq": int,
            "uploaded": int,
        },
        pk="sha256",
        not_null={"case_no", "session_id", "path", "size", "mime", "started_at", "seq", "uploaded"},
    )
    db.table("recordings").create_index(["uploaded", "started_at"])


@migrations(name="0004_registrations")
def _registrations(db: Database) -> None:
    """The receipt of every registration that came with an ``Idempotency-Key``: the same key
    again returns the same case instead of registering it twice."""
    db.table("registrations").create(
        {
            "key": str,
            "request_hash": str,
            "case_no": str,
            "query_code": str,
            "registered_at": str,
            "seq": int,
        },
        pk="key",
        not_null={"request_hash", "case_no", "query_code", "registered_at", "seq"},
    )
