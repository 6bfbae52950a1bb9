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
