"""The box's database: presence counters, cases, staged photos and the outbox."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from contracts.cases import CASE_REGISTERED, CaseForm, CaseRegistered, PhotoRef, case_number
from edge.store import outbox
from edge.store.migrations import migrations
from runtime.sqlite import Store


@dataclass(frozen=True, slots=True)
class Receipt:
    case_no: str
    query_code: str
    registered_at: dt.datetime
    seq: int


@dataclass(frozen=True, slots=True)
class SyncState:
    outbox_head: int
    acked_through: int
    last_event_at: str | None

    @property
    def depth(self) -> int:
        return self.outbox_head - self.acked_through


def _meta(db: Database, key: str) -> int:
    return int(db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()[0])


class EdgeStore(Store):
    def __init__(self, path: Path, node: str = "") -> None:
        super().__init__(path, migrations, synchronous="FULL")
        self.node = node

    async def next_bd_seq(self) -> int:
        """Increment and return the birth/death sequence, durably, before a connect."""

        def bump(db: Database) -> int:
            with db.atomic():
                db.execute("UPDATE meta SET value = value + 1 WHERE key = 'bd_seq'")
                return _meta(db, "bd_seq")

        return await self.run(bump)

    async def bd_seq(self) -> int:
        return await self.run(lambda db: _meta(db, "bd_seq"))

    # -- cases ----------------------------------------------------------------------------

    async def register_case(
        self,
        form: CaseForm,
        township: str,
        box_no: int,
        photos: list[str] = (),  # type: ignore[assignment]
    ) -> Receipt:
        """Store the case, attach staged photos and append ``case.registered``: one
        transaction, durable (synchronous=FULL) before this returns."""

        def write(db: Database) -> Receipt:
            now = dt.datetime.now(dt.UTC)
            day = now.astimezone(dt.timezone(dt.timedelta(hours=8))).date()  # Beijing time
            code = f"{secrets.randbelow(10**6):06d}"
            with db.atomic():
                db.execute(
                    "INSERT INTO case_counter (day, n) VALUES (?, 1) "
                    "ON CONFLICT(day) DO UPDATE SET n = n + 1",
                    [day.isoformat()],
                )
                n = db.execute(
                    "SELECT n FROM case_counter WHERE day = ?", [day.isoformat()]
                ).fetchone()[0]
                case_no = case_number(township, box_no, day, n)
                refs = []
                for sha in photos:
                    row = db.execute(
                        "SELECT size, mime, case_no FROM photos WHERE sha256 = ?", [sha]
                    ).fetchone()
                    if row is None or row[2] is not None:
                        raise KeyError(f"photo {sha!r} is not a staged photo")
                    refs.append(PhotoRef(sha256=sha, size=row[0], mime=row[1]))
                    db.execute("UPDATE photos SET case_no = ? WHERE sha256 = ?", [case_no, sha])
                db.table("cases").insert(
                    {
                        "case_no": case_no,
                        "registered_at": now.isoformat(),
                        **form.model_dump(mode="json"),
                    }
                )
                body = CaseRegistered(
                    case_no=case_no,
                    township=township,
                    registered_at=now,
                    form=form,
                    query_code=code,
                    photos=refs,
                )
                event = outbox.append_event(
                    db, self.node, CASE_REGISTERED, body.model_dump(mode="json")
                )
            return Receipt(case_no, code, now, event.seq)

        return await self.run(write)

    async def stage_photo(self, sha256: str, path: Path, size: int, mime: str) -> None:
        def write(db: Database) -> None:
            with db.atomic():
                db.execute(
                    "INSERT OR IGNORE INTO photos (sha256, path, size, mime, taken_at, uploaded) "
                    "VALUES (?, ?, ?, ?, ?, 0)",
                    [sha256, str(path), size, mime, dt.datetime.now(dt.UTC).isoformat()],
                )

        await self.run(write)

    async def photos_to_upload(self) -> list[tuple[str, Path, str]]:
        """Photos of registered cases not yet verified by the hub: (sha256, path, mime)."""

        def read(db: Database) -> list[tuple[str, Path, str]]:
            rows = db.execute(
                "SELECT sha256, path, mime FROM photos WHERE case_no IS NOT NULL AND uploaded = 0 "
                "ORDER BY taken_at"
            ).fetchall()
            return [(str(sha), Path(path), str(mime)) for sha, path, mime in rows]

        return await self.run(read)

    async def mark_photo_uploaded(self, sha256: str) -> None:
        def write(db: Database) -> None:
            with db.atomic():
                db.execute("UPDATE photos SET uploaded = 1 WHERE sha256 = ?", [sha256])

        await self.run(write)

    async def cases(self, limit: int = 100) -> list[dict[str, object]]:
        return await self.run(
            lambda db: list(
                db.query("SELECT * FROM cases ORDER BY registered_at DESC LIMIT ?", [limit])
            )
        )

    # -- outbox ---------------------------------------------------------------------------

    async def pending(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        return await self.run(lambda db: outbox.pending(db, after, limit))

    async def mark_acked(self, through: int) -> int:
        """Record the hub's cumulative ack (never moves backwards); returns the stored value."""

        def write(db: Database) -> int:
            with db.atomic():
                db.execute(
                    "UPDATE meta SET value = max(value, ?) WHERE key = 'acked_through'",
                    [min(through, outbox.head(db))],
                )
                return _meta(db, "acked_through")

        return await self.run(write)

    async def sync_state(self) -> SyncState:
        def read(db: Database) -> SyncState:
            last = db.execute("SELECT ts FROM outbox ORDER BY seq DESC LIMIT 1").fetchone()
            return SyncState(outbox.head(db), _meta(db, "acked_through"), last[0] if last else None)

        return await self.run(read)
