"""Named, transactional schema migrations of the hub's database."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("xfv-hub")


@migrations(name="0001_edges")
def _edges(db: Database) -> None:
    db.table("edges").create(
        {
            "node": str,
            "township": str,
            "version": str,
            "online": int,
            "bd_seq": int,
            "kiosk_port": int,
            "first_seen_at": str,
            "last_birth_at": str,
            "last_seen_at": str,
            "offline_at": str,
            "telemetry": str,
            "telemetry_at": str,
        },
        pk="node",
        not_null={"township", "online", "bd_seq"},
    )
    db.table("edges").create_index(["township"])


@migrations(name="0002_users_audit")
def _users(db: Database) -> None:
    db.table("users").create(
        {
            "username": str,
            "password_hash": str,
            "role": str,
            "jurisdiction": str,
            "display_name": str,
            "created_at": str,
            "disabled": int,
        },
        pk="username",
        not_null={"password_hash", "role", "jurisdiction", "created_at", "disabled"},
    )
    db.table("audit").create(
        {
            "id": int,
            "ts": str,
            "actor": str,
            "action": str,
            "target": str,
            "client": str,
            "detail": str,
        },
        pk="id",
        not_null={"ts", "action"},
    )
    db.table("audit").create_index(["actor"])


@migrations(name="0003_quarantine")
def _quarantine(db: Database) -> None:
    db.table("quarantine").create(
        {"id": int, "received_at": str, "topic": str, "node": str, "reason": str, "payload": bytes},
        pk="id",
        not_null={"received_at", "topic", "reason"},
    )


@migrations(name="0004_events_cases")
def _events_cases(db: Database) -> None:
    db.execute(
        """CREATE TABLE events (
             node TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, ts TEXT NOT NULL,
             hash TEXT NOT NULL, prev_hash TEXT NOT NULL, payload_enc BLOB NOT NULL,
             received_at TEXT NOT NULL, UNIQUE (node, seq))"""
    )
    db.table("streams").create(
        {
            "node": str,
            "head_seq": int,
            "head_hash": str,
            "chain_ok": int,
            "break_seq": int,
            "break_reason": str,
            "last_event_at": str,
            "gap_since": str,
            "resyncs": int,
        },
        pk="node",
        not_null={"head_seq", "head_hash", "chain_ok", "resyncs"},
    )
    db.execute(
        """CREATE TABLE held (
             node TEXT NOT NULL, seq INTEGER NOT NULL, payload_enc BLOB NOT NULL,
             received_at TEXT NOT NULL, PRIMARY KEY (node, seq))"""
    )
    db.table("cases").create(
        {
            "case_no": str,
            "node": str,
            "township": str,
            "registered_at": str,
            "name": str,
            "id_enc": bytes,
            "id_hmac": str,
            "id_masked": str,
            "phone": str,
            "address": str,
            "category": str,
            "concerned_unit": str,
            "content": str,
            "query_code_hash": str,
            "state": str,
            "photos_total": int,
            "photos_verified": int,
            "complete": int,
            "seq": int,
            "created_at": str,
        },
        pk="case_no",
        not_null={"node", "township", "registered_at", "id_enc", "id_hmac", "state"},
    )
    db.table("cases").create_index(["township", "registered_at"])
    db.table("cases").create_index(["id_hmac"])
    db.table("case_photos").create(
        {"case_no": str, "sha256": str, "size": int, "mime": str, "verified": int},
        pk=("case_no", "sha256"),
    )
    db.table("case_timeline").create(
        {"id": int, "case_no": str, "ts": str, "kind": str, "actor": str, "detail": str},
        pk="id",
    )
    db.table("case_timeline").create_index(["case_no"])


@migrations(name="0005_lookup_indexes")
def _lookup_indexes(db: Database) -> None:
    """Photo reads look up the cases of a blob; the box page lists one box's cases."""
    db.table("case_photos").create_index(["sha256"])
    db.table("cases").create_index(["node", "registered_at"])
