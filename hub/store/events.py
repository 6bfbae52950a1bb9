"""Ingesting box events: exactly once, in order, chain-verified (runs inside one transaction).

Per box the hub keeps a stream head ``(head_seq, head_hash)``. An event is applied only when it is
the next one (``seq == head_seq + 1``) and links to the head with a correct hash. A repeat is a
no-op; an early event (a gap before it) is held until the gap fills; a broken link or a bad body
flags the box and holds its stream at the break, never skipping past it.

A batch reads each box's head once, keeps it in memory while it applies that box's events, and
writes it back once (``Batch.flush``), all inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from sqlite_utils import Database

from contracts.chain import GENESIS, hash_matches
from contracts.errors import ContractError
from contracts.events import EventEnvelope
from contracts.wire import decode_record
from hub.pii import PiiVault
from hub.store.projection import Projection, ProjectionError, plan, store
from runtime.sqlite import transaction


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    HELD = "held"
    QUARANTINED = "quarantined"


@dataclass(slots=True)
class Head:
    """One box's stream head as the batch sees it."""

    seq: int
    hash: str
    chain_ok: bool
    gapped: bool
    """Events wait behind a gap (checked after each applied event)."""
    moved: bool = False


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class Batch:
    """What one batch did: outcomes, the heads to ack, and what to quarantine."""

    outcomes: list[Outcome] = field(default_factory=list)
    heads: dict[str, int] = field(default_factory=dict)
    quarantine: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    flagged: set[str] = field(default_factory=set)
    now: str = field(default_factory=_now)
    streams: dict[str, Head] = field(default_factory=dict)

    def head(self, db: Database, node: str) -> Head:
        head = self.streams.get(node)
        if head is None:
            head = self.streams[node] = stream_head(db.conn, node)
        return head

    def flush(self, db: Database) -> None:
        """Write the heads that moved back to ``streams``."""
        db.conn.executemany(
            "UPDATE streams SET head_seq = ?, head_hash = ?, last_event_at = ? WHERE node = ?",
            [(h.seq, h.hash, self.now, node) for node, h in self.streams.items() if h.moved],
        )


def _aad(node: str, seq: int) -> bytes:
    return f"event:{node}:{seq}".encode()


def stream_head(conn: sqlite3.Connection, node: str) -> Head:
    row = conn.execute(
        "SELECT head_seq, head_hash, chain_ok, gap_since FROM streams WHERE node = ?", [node]
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO streams (node, head_seq, head_hash, chain_ok, resyncs) "
            "VALUES (?, 0, ?, 1, 0)",
            [node, GENESIS],
        )
        return Head(0, GENESIS, chain_ok=True, gapped=False)
    return Head(int(row[0]), str(row[1]), chain_ok=bool(row[2]), gapped=row[3] is not None)


class Prepared(NamedTuple):
    """One event checked on its own (``prepare``): everything about it that does not depend on
    the box's stream or the database. Where it goes is decided later (``commit``)."""

    node: str
    topic: str
    payload: bytes
    seq: int
    type: str
    ts: str
    hash: str
    prev_hash: str
    sealed: bytes
    """The payload encrypted for ``events`` or ``held`` (bound to node and seq)."""
    hash_ok: bool
    projection: Projection | None
    problem: str | None
    """Why the body cannot be projected, if it cannot."""


class Rejected(NamedTuple):
    """An event that is not one: malformed, wrong schema, or on another box's topic."""

    node: str
    topic: str
    payload: bytes
    reason: str


def prepare(vault: PiiVault, node: str, topic: str, payload: bytes) -> Prepared | Rejected:
    """Decode, hash-check, encrypt and lay out one event from ``node``'s events topic."""
    try:
        event, record = decode_record(EventEnvelope, payload)
        if event.node != node:
            raise ContractError(f"payload names node {event.node!r} but came on {node!r}'s topic")
    except ContractError as exc:
        return Rejected(node, topic, payload, str(exc))
    projection, problem = None, None
    try:
        projection = plan(vault, event)
    except ProjectionError as exc:
        problem = str(exc)
    return Prepared(
        node,
        topic,
        payload,
        event.seq,
        event.type,
        event.ts.isoformat(),
        event.hash,
        event.prev_hash,
        vault.encrypt(payload, _aad(node, event.seq)),
        hash_matches(record, event.hash),  # over exactly what was sent
        projection,
        problem,
    )


def prepare_batch(
    vault: PiiVault, events: list[tuple[str, str, bytes]]
) -> list[Prepared | Rejected]:
    """``prepare`` each (node, topic, payload)."""
    return [prepare(vault, node, topic, payload) for node, topic, payload in events]


def commit(db: Database, vault: PiiVault, prepared: list[Prepared | Rejected]) -> Batch:
    """Apply prepared events in order and quarantine the rejects, all in one transaction: when
    this returns, everything it reports is on disk."""
    batch = Batch()
    with transaction(db):
        for item in prepared:
            if isinstance(item, Rejected):
                batch.quarantine.append((item.topic, item.node, item.reason, item.payload))
                batch.outcomes.append(Outcome.QUARANTINED)
                continue
            outcome = _apply(db, item, batch)
            if outcome is Outcome.APPLIED and batch.head(db, item.node).gapped:
                _drain_held(db, vault, item.node, item.topic, batch)
            batch.outcomes.append(outcome)
        batch.flush(db)
        for topic, node, reason, payload in batch.quarantine:
            quarantine(db, batch.now, topic, node, reason, payload)
    batch.streams.clear()  # the caller needs the outcomes, not the cache
    return batch


def ingest_batch(db: Database, vault: PiiVault, events: list[tuple[str, str, bytes]]) -> Batch:
    """``prepare`` and ``commit`` in one go."""
    return commit(db, vault, prepare_batch(vault, events))


def quarantine(
    db: Database, now: str, topic: str, node: str | None, reason: str, payload: bytes
) -> int:
    """Keep a message that could not be accepted, with the reason; returns its id."""
    cursor = db.conn.execute(
        "INSERT INTO quarantine (received_at, topic, node, reason, payload) VALUES (?,?,?,?,?)",
        [now, topic, node, reason, payload],
    )
    return int(cursor.lastrowid or 0)


def _apply(db: Database, event: Prepared, batch: Batch) -> Outcome:
    node, seq, conn = event.node, event.seq, db.conn
    head = batch.head(db, node)
    if seq <= head.seq:
        row = conn.execute(
            "SELECT hash FROM events WHERE node = ? AND seq = ?", [node, seq]
        ).fetchone()
        if row is not None and row[0] == event.hash:
            batch.heads[node] = head.seq  # re-ack: the box may have missed the last ack
            return Outcome.DUPLICATE
        batch.quarantine.append(
            (
                event.topic,
                node,
                f"seq {seq} was already accepted with another "
                f"hash ({row[0] if row else '?'}); got {event.hash}",
                event.payload,
            )
        )
        return Outcome.QUARANTINED
    if seq > head.seq + 1 or not head.chain_ok:
        conn.execute(
            "INSERT OR REPLACE INTO held (node, seq, payload_enc, received_at) VALUES (?,?,?,?)",
            [node, seq, event.sealed, batch.now],
        )
        if not head.gapped:
            conn.execute(
                "UPDATE streams SET gap_since = coalesce(gap_since, ?) WHERE node = ?",
                [batch.now, node],
            )
            head.gapped = True
        return Outcome.HELD
    reason = None
    if event.prev_hash != head.hash:
        reason = f"chain break at seq {seq}: prev_hash {event.prev_hash} != head {head.hash}"
    elif not event.hash_ok:
        reason = f"chain break at seq {seq}: hash {event.hash} does not match the event"
    elif event.problem is not None:
        reason = f"event seq {seq} ({event.type}) cannot be applied: {event.problem}"
    elif event.projection is not None:
        try:
            store(db, event.projection, batch.now)
        except ProjectionError as exc:
            reason = f"event seq {seq} ({event.type}) cannot be applied: {exc}"
    if reason is not None:
        conn.execute(
            "UPDATE streams SET chain_ok = 0, break_seq = ?, break_reason = ? WHERE node = ?",
            [seq, reason, node],
        )
        head.chain_ok = False
        batch.quarantine.append((event.topic, node, reason, event.payload))
        batch.flagged.add(node)
        return Outcome.QUARANTINED
    conn.execute(
        "INSERT INTO events (node, seq, type, ts, hash, prev_hash, payload_enc, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [node, seq, event.type, event.ts, event.hash, event.prev_hash, event.sealed, batch.now],
    )
    head.seq, head.hash, head.moved = seq, event.hash, True
    batch.heads[node] = seq
    return Outcome.APPLIED


def _drain_held(db: Database, vault: PiiVault, node: str, topic: str, batch: Batch) -> None:
    """Apply held events that have become next in line."""
    conn, head = db.conn, batch.head(db, node)
    while True:
        row = conn.execute(
            "SELECT payload_enc FROM held WHERE node = ? AND seq = ?", [node, head.seq + 1]
        ).fetchone()
        if row is None:
            left = conn.execute("SELECT count(*) FROM held WHERE node = ?", [node]).fetchone()[0]
            if not left:
                conn.execute("UPDATE streams SET gap_since = NULL WHERE node = ?", [node])
                head.gapped = False
            return
        conn.execute("DELETE FROM held WHERE node = ? AND seq = ?", [node, head.seq + 1])
        event = prepare(vault, node, topic, vault.decrypt(row[0], _aad(node, head.seq + 1)))
        if isinstance(event, Rejected):  # it was an event when held: cannot happen, but keep it
            batch.quarantine.append((topic, node, event.reason, event.payload))
            return
        if _apply(db, event, batch) is not Outcome.APPLIED:
            return


def overdue_gaps(db: Database, older_than: dt.datetime) -> list[tuple[str, int]]:
    """Boxes whose stream has waited on a gap since before ``older_than``: (node, from_seq)."""
    rows = db.execute(
        "SELECT node, head_seq FROM streams WHERE gap_since IS NOT NULL AND gap_since < ? "
        "AND chain_ok = 1",
        [older_than.isoformat(timespec="milliseconds")],
    ).fetchall()
    return [(str(node), int(head) + 1) for node, head in rows]


def payloads(db: Database, vault: PiiVault, node: str) -> list[bytes]:
    """Every accepted event of ``node`` in seq order, decrypted (for chain verification)."""
    rows = db.execute(
        "SELECT seq, payload_enc FROM events WHERE node = ? ORDER BY seq", [node]
    ).fetchall()
    return [vault.decrypt(blob, _aad(node, int(seq))) for seq, blob in rows]
