"""Ingesting box events: exactly once, in order, chain-verified (runs inside one transaction).

Per box the hub keeps a stream head ``(head_seq, head_hash)``. An event is applied only when it is
the next one (``seq == head_seq + 1``) and links to the head with a correct hash. A repeat is a
no-op; an early event (a gap before it) is held until the gap fills; a broken link or a bad body
flags the box and holds its stream at the break, never skipping past it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from enum import StrEnum

from sqlite_utils import Database

from contracts.chain import GENESIS, record_hash
from contracts.errors import ContractError
from contracts.events import EventEnvelope
from contracts.wire import decode
from hub.pii import PiiVault
from hub.store.projection import ProjectionError, project


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    HELD = "held"
    QUARANTINED = "quarantined"


@dataclass
class BatchResult:
    """What one batch did: outcomes, the heads to ack, and what to quarantine."""

    outcomes: list[Outcome] = field(default_factory=list)
    heads: dict[str, int] = field(default_factory=dict)
    quarantine: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    flagged: set[str] = field(default_factory=set)
    gapped: set[str] = field(default_factory=set)
    """Boxes with events held behind a gap (checked after each applied event)."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _aad(node: str, seq: int) -> bytes:
    return f"event:{node}:{seq}".encode()


def stream_head(
    db: Database, node: str, result: BatchResult | None = None
) -> tuple[int, str, bool]:
    row = db.execute(
        "SELECT head_seq, head_hash, chain_ok, gap_since FROM streams WHERE node = ?", [node]
    ).fetchone()
    if row is not None and row[3] is not None and result is not None:
        result.gapped.add(node)
    if row is None:
        db.execute(
            "INSERT INTO streams (node, head_seq, head_hash, chain_ok, resyncs) "
            "VALUES (?, 0, ?, 1, 0)",
            [node, GENESIS],
        )
        return 0, GENESIS, True
    return int(row[0]), str(row[1]), bool(row[2])


def ingest(
    db: Database, vault: PiiVault, node: str, topic: str, payload: bytes, result: BatchResult
) -> Outcome:
    """Take one event payload from ``node``'s events topic; call inside ``db.atomic()``."""
    try:
        event = decode(EventEnvelope, payload)
        if event.node != node:
            raise ContractError(f"payload names node {event.node!r} but came on {node!r}'s topic")
    except ContractError as exc:
        result.quarantine.append((topic, node, str(exc), payload))
        return Outcome.QUARANTINED
    outcome = _apply(db, vault, event, payload, topic, result)
    if outcome is Outcome.APPLIED and node in result.gapped:
        _drain_held(db, vault, node, topic, result)
    return outcome


def _apply(
    db: Database,
    vault: PiiVault,
    event: EventEnvelope,
    payload: bytes,
    topic: str,
    result: BatchResult,
) -> Outcome:
    node, seq = event.node, event.seq
    head_seq, head_hash, chain_ok = stream_head(db, node, result)
    if seq <= head_seq:
        row = db.execute(
            "SELECT hash FROM events WHERE node = ? AND seq = ?", [node, seq]
        ).fetchone()
        if row is not None and row[0] == event.hash:
            result.heads[node] = head_seq  # re-ack: the box may have missed the last ack
            return Outcome.DUPLICATE
        result.quarantine.append(
            (
                topic,
                node,
                f"seq {seq} was already accepted with another "
                f"hash ({row[0] if row else '?'}); got {event.hash}",
                payload,
            )
        )
        return Outcome.QUARANTINED
    if seq > head_seq + 1 or not chain_ok:
        db.execute(
            "INSERT OR REPLACE INTO held (node, seq, payload_enc, received_at) VALUES (?,?,?,?)",
            [node, seq, vault.encrypt(payload, _aad(node, seq)), _now()],
        )
        db.execute(
            "UPDATE streams SET gap_since = coalesce(gap_since, ?) WHERE node = ?", [_now(), node]
        )
        return Outcome.HELD
    reason = None
    if event.prev_hash != head_hash:
        reason = f"chain break at seq {seq}: prev_hash {event.prev_hash} != head {head_hash}"
    elif record_hash(json.loads(payload)) != event.hash:  # over exactly what was sent
        reason = f"chain break at seq {seq}: hash {event.hash} does not match the event"
    else:
        try:
            project(db, vault, event)
        except ProjectionError as exc:
            reason = f"event seq {seq} ({event.type}) cannot be applied: {exc}"
    if reason is not None:
        db.execute(
            "UPDATE streams SET chain_ok = 0, break_seq = ?, break_reason = ? WHERE node = ?",
            [seq, reason, node],
        )
        result.quarantine.append((topic, node, reason, payload))
        result.flagged.add(node)
        return Outcome.QUARANTINED
    db.execute(
        "INSERT INTO events (node, seq, type, ts, hash, prev_hash, payload_enc, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            node,
            seq,
            event.type,
            event.ts.isoformat(),
            event.hash,
            event.prev_hash,
            vault.encrypt(payload, _aad(node, seq)),
            _now(),
        ],
    )
    db.execute(
        "UPDATE streams SET head_seq = ?, head_hash = ?, last_event_at = ? WHERE node = ?",
        [seq, event.hash, _now(), node],
    )
    result.heads[node] = seq
    return Outcome.APPLIED


def _drain_held(db: Database, vault: PiiVault, node: str, topic: str, result: BatchResult) -> None:
    """Apply held events that have become next in line."""
    while True:
        head_seq = stream_head(db, node)[0]
        row = db.execute(
            "SELECT payload_enc FROM held WHERE node = ? AND seq = ?", [node, head_seq + 1]
        ).fetchone()
        if row is None:
            left = db.execute("SELECT count(*) FROM held WHERE node = ?", [node]).fetchone()[0]
            if not left:
                db.execute("UPDATE streams SET gap_since = NULL WHERE node = ?", [node])
                result.gapped.discard(node)
            return
        db.execute("DELETE FROM held WHERE node = ? AND seq = ?", [node, head_seq + 1])
        payload = vault.decrypt(row[0], _aad(node, head_seq + 1))
        event = decode(EventEnvelope, payload)
        if _apply(db, vault, event, payload, topic, result) is not Outcome.APPLIED:
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
