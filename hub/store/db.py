"""The hub's database: the box registry, users, the audit log and the quarantine."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from contracts.access import Role
from contracts.presence import Birth, Death
from contracts.telemetry import Telemetry
from hub.errors import UnitProblem, UserExists
from hub.pii import PiiVault
from hub.store.events import overdue_gaps, payloads, quarantine
from hub.store.migrations import migrations
from runtime.sqlite import Store, transaction

EdgeRow = dict[str, Any]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _check_unit(db: Database, role: Role, jurisdiction: str, unit_id: str | None) -> None:
    """A ``unit`` user needs a unit; any unit named must exist and serve a division inside
    the user's jurisdiction (or the jurisdiction itself)."""
    if unit_id is None:
        if role is Role.UNIT:
            raise UnitProblem("a user of role 'unit' needs the unit it works for (--unit)")
        return
    row = db.execute("SELECT jurisdiction FROM units WHERE id = ?", [unit_id]).fetchone()
    if row is None:
        raise UnitProblem(f"no unit {unit_id!r}; load units with `xfv hub seed-org`")
    if not str(row[0]).startswith(jurisdiction):
        raise UnitProblem(
            f"unit {unit_id!r} serves {row[0]}, outside the user's jurisdiction {jurisdiction}"
        )


@dataclass(frozen=True, slots=True)
class User:
    username: str
    password_hash: str
    role: Role
    jurisdiction: str
    display_name: str
    disabled: bool
    unit_id: str | None = None
    """The responsible unit (责任单位) of a ``unit`` user."""


EDGE_SELECT = (
    "SELECT e.*, s.head_seq, s.chain_ok, s.break_seq, s.break_reason, s.last_event_at, "
    "(SELECT count(*) FROM held h WHERE h.node = e.node) AS held "
    "FROM edges e LEFT JOIN streams s ON s.node = e.node"
)
"""A box's registry row with its event stream's state at the hub."""


def _edge_by_node(db: Database, node: str) -> EdgeRow | None:
    rows = list(db.query(EDGE_SELECT + " WHERE e.node = ?", [node]))
    return _edge(rows[0]) if rows else None


def _edge(row: dict[str, Any] | None) -> EdgeRow | None:
    if row is None:
        return None
    out = dict(row)
    out["online"] = bool(out["online"])
    out["telemetry"] = json.loads(out["telemetry"]) if out.get("telemetry") else None
    return out


class HubStore(Store):
    def __init__(self, path: Path) -> None:
        super().__init__(path, migrations, synchronous="NORMAL")

    # -- box registry -------------------------------------------------------------------

    async def record_birth(self, birth: Birth) -> EdgeRow:
        """Mark the box online under this birth's ``bd_seq`` (a birth always wins)."""

        def write(db: Database) -> EdgeRow:
            ts = now_iso()
            with transaction(db):
                db.execute(
                    """INSERT INTO edges (node, township, version, online, bd_seq, kiosk_port,
                           first_seen_at, last_birth_at, last_seen_at, offline_at)
                       VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, NULL)
                       ON CONFLICT(node) DO UPDATE SET township=excluded.township,
                           version=excluded.version, online=1, bd_seq=excluded.bd_seq,
                           kiosk_port=excluded.kiosk_port, last_birth_at=excluded.last_birth_at,
                           last_seen_at=excluded.last_seen_at, offline_at=NULL""",
                    [
                        birth.node,
                        birth.township,
                        birth.version,
                        birth.bd_seq,
                        birth.kiosk_port,
                        ts,
                        ts,
                        ts,
                    ],
                )
                row = _edge_by_node(db, birth.node)
            assert row is not None
            return row

        return await self.run(write)

    async def record_death(self, death: Death) -> EdgeRow | None:
        """Mark the box offline if ``death.bd_seq`` is its current one; else ignore (stale)."""

        def write(db: Database) -> EdgeRow | None:
            with transaction(db):
                cur = db.execute(
                    "UPDATE edges SET online=0, offline_at=? "
                    "WHERE node=? AND bd_seq=? AND online=1",
                    [now_iso(), death.node, death.bd_seq],
                )
                if cur.rowcount == 0:
                    return None
                return _edge_by_node(db, death.node)

        return await self.run(write)

    async def record_telemetry(self, report: Telemetry) -> EdgeRow | None:
        """Store the latest health report of a known box (unknown boxes: ``None``)."""

        def write(db: Database) -> EdgeRow | None:
            ts = now_iso()
            with transaction(db):
                cur = db.execute(
                    "UPDATE edges SET telemetry=?, telemetry_at=?, last_seen_at=? WHERE node=?",
                    [report.model_dump_json(), ts, ts, report.node],
                )
                if cur.rowcount == 0:
                    return None
                return _edge_by_node(db, report.node)

        return await self.run(write)

    async def edges(self, jurisdiction: str = "") -> list[EdgeRow]:
        """Boxes whose township lies in ``jurisdiction`` (a code prefix), by township, node."""

        def read(db: Database) -> list[EdgeRow]:
            rows = db.query(
                EDGE_SELECT + " WHERE e.township LIKE ? || '%' ORDER BY e.township, e.node",
                [jurisdiction],
            )
            return [r for r in (_edge(row) for row in rows) if r is not None]

        return await self.run(read)

    async def edge(self, node: str) -> EdgeRow | None:
        def read(db: Database) -> EdgeRow | None:
            rows = list(db.query(EDGE_SELECT + " WHERE e.node = ?", [node]))
            return _edge(rows[0]) if rows else None

        return await self.run(read)

    # -- users and audit ----------------------------------------------------------------

    async def add_user(
        self,
        username: str,
        password_hash: str,
        role: Role,
        jurisdiction: str,
        display_name: str = "",
        *,
        replace: bool = False,
        unit_id: str | None = None,
    ) -> None:
        def write(db: Database) -> None:
            with transaction(db):
                exists = bool(list(db.query("SELECT 1 FROM users WHERE username=?", [username])))
                if exists and not replace:
                    raise UserExists(f"user {username!r} already exists")
                _check_unit(db, role, jurisdiction, unit_id)
                db.table("users").upsert(
                    {
                        "username": username,
                        "password_hash": password_hash,
                        "role": role.value,
                        "jurisdiction": jurisdiction,
                        "display_name": display_name or username,
                        "created_at": now_iso(),
                        "disabled": 0,
                        "unit_id": unit_id,
                    },
                    pk="username",
                )

        await self.run(write)

    async def user(self, username: str) -> User | None:
        def read(db: Database) -> User | None:
            rows = list(db.query("SELECT * FROM users WHERE username = ?", [username]))
            if not rows:
                return None
            r = rows[0]
            return User(
                r["username"],
                r["password_hash"],
                Role(r["role"]),
                r["jurisdiction"],
                r["display_name"],
                bool(r["disabled"]),
                r["unit_id"],
            )

        return await self.run(read)

    async def audit(
        self,
        actor: str | None,
        action: str,
        target: str = "",
        client: str = "",
        **detail: Any,
    ) -> None:
        def write(db: Database) -> None:
            with transaction(db):
                db.table("audit").insert(
                    {
                        "ts": now_iso(),
                        "actor": actor,
                        "action": action,
                        "target": target,
                        "client": client,
                        "detail": json.dumps(detail, ensure_ascii=False),
                    }
                )

        await self.run(write)

    # -- box events -----------------------------------------------------------------------

    async def overdue_gaps(self, wait: dt.timedelta) -> list[tuple[str, int]]:
        """Streams stuck on a gap for longer than ``wait``; restarts their clocks.

        Asked twice a second: only a stream that is due takes the write lock (which the
        ingest writers need for every batch)."""

        def write(db: Database) -> list[tuple[str, int]]:
            now = dt.datetime.now(dt.UTC)
            if not overdue_gaps(db, now - wait):
                return []
            with transaction(db):
                due = overdue_gaps(db, now - wait)
                for node, _ in due:
                    db.execute(
                        "UPDATE streams SET gap_since = ?, resyncs = resyncs + 1 WHERE node = ?",
                        [now.isoformat(timespec="milliseconds"), node],
                    )
            return due

        return await self.run(write)

    async def streams(self) -> dict[str, dict[str, Any]]:
        """Each box's sync state: head, chain flag, held events."""

        def read(db: Database) -> dict[str, dict[str, Any]]:
            rows = db.query(
                "SELECT s.*, (SELECT count(*) FROM held h WHERE h.node = s.node) AS held "
                "FROM streams s"
            )
            return {r["node"]: {**r, "chain_ok": bool(r["chain_ok"])} for r in rows}

        return await self.run(read)

    async def event_payloads(self, vault: PiiVault, node: str) -> list[bytes]:
        return await self.run(lambda db: payloads(db, vault, node))

    async def stream_nodes(self) -> list[str]:
        return await self.run(
            lambda db: [r[0] for r in db.execute("SELECT node FROM streams ORDER BY node")]
        )

    # -- quarantine -----------------------------------------------------------------------

    async def quarantine(self, topic: str, node: str | None, reason: str, payload: bytes) -> int:
        """Keep a message that could not be accepted, with the reason; returns its id."""

        def write(db: Database) -> int:
            with transaction(db):
                return quarantine(db, now_iso(), topic, node, reason, payload)

        return await self.run(write)

    async def quarantined(self, limit: int = 100) -> list[dict[str, Any]]:
        def read(db: Database) -> list[dict[str, Any]]:
            rows = db.query(
                "SELECT id, received_at, topic, node, reason, length(payload) AS size "
                "FROM quarantine ORDER BY id DESC LIMIT ?",
                [limit],
            )
            return list(rows)

        return await self.run(read)

    # -- case photos ----------------------------------------------------------------------

    async def photo_cases(self, sha256: str) -> list[dict[str, Any]]:
        """``case_no``, ``township``, ``category`` and ``unit_id`` of every case with blob
        ``sha256`` among its photos."""

        def read(db: Database) -> list[dict[str, Any]]:
            return list(
                db.query(
                    "SELECT c.case_no, c.township, c.category, c.unit_id FROM case_photos p "
                    "JOIN cases c ON c.case_no = p.case_no WHERE p.sha256 = ? "
                    "ORDER BY c.case_no",
                    [sha256],
                )
            )

        return await self.run(read)
