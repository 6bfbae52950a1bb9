"""The outbox: every change appends its hash-chained event in the change's own transaction.

``seq`` is the row id of the ``outbox`` table: it starts at 1, never resets and has no gaps,
because rows are only ever appended inside the transaction that makes the change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlite_utils import Database

from contracts.chain import GENESIS
from contracts.events import EventEnvelope


def append_event(db: Database, node: str, type: str, body: dict[str, Any]) -> EventEnvelope:
    """Append one event linked to the chain head; call inside ``db.atomic()``."""
    head = db.execute("SELECT seq, hash FROM outbox ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    event = EventEnvelope.create(
        node=node, seq=seq, type=type, ts=dt.datetime.now(dt.UTC), body=body, prev_hash=prev
    )
    db.execute(
        "INSERT INTO outbox (seq, type, ts, payload, hash) VALUES (?, ?, ?, ?, ?)",
        [seq, type, event.ts.isoformat(), event.model_dump_json(), event.hash],
    )
    return event


def pending(db: Database, after: int, limit: int) -> list[tuple[int, bytes]]:
    """Up to ``limit`` events with ``seq > after``, in order, as (seq, payload)."""
    rows = db.execute(
        "SELECT seq, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", [after, limit]
    ).fetchall()
    return [(int(seq), payload.encode()) for seq, payload in rows]


def head(db: Database) -> int:
    row = db.execute("SELECT max(seq) FROM outbox").fetchone()
    return int(row[0] or 0)
