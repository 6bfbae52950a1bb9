"""The box's database: presence counters now, cases and the outbox later."""

from __future__ import annotations

from pathlib import Path

from sqlite_utils import Database

from edge.store.migrations import migrations
from runtime.sqlite import Store


class EdgeStore(Store):
    def __init__(self, path: Path) -> None:
        super().__init__(path, migrations, synchronous="FULL")

    async def next_bd_seq(self) -> int:
        """Increment and return the birth/death sequence, durably, before a connect."""

        def bump(db: Database) -> int:
            with db.atomic():
                db.execute("UPDATE meta SET value = value + 1 WHERE key = 'bd_seq'")
                row = db.execute("SELECT value FROM meta WHERE key = 'bd_seq'").fetchone()
            return int(row[0])

        return await self.run(bump)

    async def bd_seq(self) -> int:
        def read(db: Database) -> int:
            return int(db.execute("SELECT value FROM meta WHERE key = 'bd_seq'").fetchone()[0])

        return await self.run(read)
