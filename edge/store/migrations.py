"""Named, transactional schema migrations of the box's database."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("xfv-edge")


@migrations(name="0001_meta")
def _meta(db: Database) -> None:
    db.table("meta").create({"key": str, "value": int}, pk="key")
    db.table("meta").insert({"key": "bd_seq", "value": 0})
