"""Live reception's session events in the hub's database (migration ``0011_live``).

Signaling emits a ``contracts.signaling.LiveEvent`` for each step of a reception; the relay
agent receives them and :func:`record_event` writes each in one transaction:

==============  ===========================================  ======================
event           rows                                         case timeline kind
==============  ===========================================  ======================
requested       —                                            ``live.requested``
cancelled       —                                            ``live.cancelled``
accepted        (kept in ``live_events`` until ``started``)  ``live.accepted``
started         ``live_sessions`` row                        ``live.started``
ended           ``live_sessions`` ended_at, duration, reason ``live.ended``
monitor_view    ``live_views`` row + audit ``live.monitor_view``  — (silent: audit only)
==============  ===========================================  ======================

Events may arrive twice (a relay reconnect): each has a key (kind and ids) in
``live_events``; an event whose key is there already changes nothing. Timeline ``detail`` is
JSON with ``request_id``/``session_id`` and, where known, ``official``, ``waited_s``,
``duration_s``, ``reason``, ``by``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlite_utils import Database

from contracts import signaling as sig
from runtime.sqlite import transaction

TIMELINE_PREFIX = "live."
MONITOR_VIEW_ACTION = "live.monitor_view"


def iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def event_key(event: sig.LiveEvent) -> str:
    """What makes an event the same event when delivered again."""
    match event:
        case sig.Requested() | sig.Cancelled() | sig.Accepted():
            return f"{event.kind}:{event.request_id}"
        case sig.Started() | sig.Ended():
            return f"{event.kind}:{event.session_id}"
        case sig.MonitorView():
            return f"{event.kind}:{event.session_id}:{event.monitor}:{iso(event.from_at)}"


def record_event(db: Database, event: sig.LiveEvent) -> bool:
    """Write ``event`` (see the module docstring); ``False`` when it was recorded before."""
    key = event_key(event)
    detail = _detail(event)
    with transaction(db):
        cursor = db.execute(
            "INSERT OR IGNORE INTO live_events (key, kind, at, detail) VALUES (?, ?, ?, ?)",
            [key, event.kind, iso(event.at), json.dumps(detail, ensure_ascii=False)],
        )
        if cursor.rowcount == 0:
            return False
        match event:
            case sig.Started():
                _started(db, event)
            case sig.Ended():
                _ended(db, event)
            case sig.MonitorView():
                _viewed(db, event)
        if not isinstance(event, sig.MonitorView):
            db.execute(
                "INSERT INTO case_timeline (case_no, ts, kind, actor, detail) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    event.case_no,
                    iso(event.at),
                    TIMELINE_PREFIX + event.kind,
                    _actor(event),
                    json.dumps(detail, ensure_ascii=False),
                ],
            )
    return True


def _actor(event: sig.LiveEvent) -> str | None:
    match event:
        case sig.Requested() | sig.Cancelled():
            return event.node
        case sig.Accepted() | sig.Started():
            return event.official
        case sig.Ended():
            return event.by
        case sig.MonitorView():
            return event.monitor


def _detail(event: sig.LiveEvent) -> dict[str, Any]:
    match event:
        case sig.Requested():
            return {"request_id": event.request_id, "category": event.category.value}
        case sig.Cancelled():
            return {
                "request_id": event.request_id,
                "reason": event.reason,
                "waited_s": round(event.waited_s, 1),
            }
        case sig.Accepted():
            return {
                "request_id": event.request_id,
                "official": event.official,
                "waited_s": round(event.waited_s, 1),
            }
        case sig.Started():
            return {
                "request_id": event.request_id,
                "session_id": event.session_id,
                "official": event.official,
            }
        case sig.Ended():
            return {
                "session_id": event.session_id,
                "official": event.official,
                "reason": event.reason,
                "by": event.by,
                "duration_s": round(event.duration_s, 1),
            }
        case sig.MonitorView():
            return {
                "session_id": event.session_id,
                "case_no": event.case_no,
                "monitor_jur": event.monitor_jur,
                "from": iso(event.from_at),
                "to": iso(event.at),
                "duration_s": round(event.duration_s, 1),
            }


def _started(db: Database, event: sig.Started) -> None:
    accepted = db.execute(
        "SELECT at, detail FROM live_events WHERE key = ?", [f"accepted:{event.request_id}"]
    ).fetchone()
    accepted_at = requested_at = None
    if accepted is not None:
        accepted_at = accepted[0]
        waited = float(json.loads(accepted[1]).get("waited_s", 0.0))
        requested_at = iso(dt.datetime.fromisoformat(accepted_at) - dt.timedelta(seconds=waited))
    db.execute(
        """INSERT INTO live_sessions (session_id, request_id, case_no, node, township, official,
             requested_at, accepted_at, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (session_id) DO UPDATE SET request_id = excluded.request_id,
             requested_at = excluded.requested_at, accepted_at = excluded.accepted_at,
             started_at = excluded.started_at""",
        [
            event.session_id,
            event.request_id,
            event.case_no,
            event.node,
            event.township,
            event.official,
            requested_at,
            accepted_at,
            iso(event.at),
        ],
    )


def _ended(db: Database, event: sig.Ended) -> None:
    db.execute(
        """INSERT INTO live_sessions (session_id, case_no, node, township, official, started_at,
             ended_at, duration_s, end_reason, ended_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (session_id) DO UPDATE SET ended_at = excluded.ended_at,
             duration_s = excluded.duration_s, end_reason = excluded.end_reason,
             ended_by = excluded.ended_by""",
        [
            event.session_id,
            event.case_no,
            event.node,
            event.township,
            event.official,
            iso(event.started_at),
            iso(event.at),
            event.duration_s,
            event.reason,
            event.by,
        ],
    )


def _viewed(db: Database, event: sig.MonitorView) -> None:
    db.execute(
        "INSERT OR IGNORE INTO live_views (session_id, monitor, monitor_jur, from_at, to_at, "
        "duration_s) VALUES (?, ?, ?, ?, ?, ?)",
        [
            event.session_id,
            event.monitor,
            event.monitor_jur,
            iso(event.from_at),
            iso(event.at),
            event.duration_s,
        ],
    )
    db.execute(
        "INSERT INTO audit (ts, actor, action, target, client, detail) VALUES (?, ?, ?, ?, ?, ?)",
        [
            iso(event.at),
            event.monitor,
            MONITOR_VIEW_ACTION,
            event.session_id,
            "signaling",
            json.dumps(_detail(event), ensure_ascii=False),
        ],
    )


# --- reading ----------------------------------------------------------------------------------

SESSION_COLUMNS = (
    "s.session_id, s.request_id, s.case_no, s.node, s.township, s.official, s.requested_at, "
    "s.accepted_at, s.started_at, s.ended_at, s.duration_s, s.end_reason, s.ended_by, "
    "c.category, c.unit_id"
)


def list_sessions(
    db: Database,
    where: list[str],
    args: list[Any],
    limit: int,
) -> list[dict[str, Any]]:
    """Sessions (newest first) matching ``where`` (conditions on ``live_sessions s`` and
    ``cases c``, which may be missing: LEFT JOIN)."""
    sql = (
        f"SELECT {SESSION_COLUMNS} FROM live_sessions s LEFT JOIN cases c "
        f"ON c.case_no = s.case_no WHERE {' AND '.join(where) or '1'} "
        "ORDER BY s.started_at DESC LIMIT ?"
    )
    return list(db.query(sql, [*args, limit]))


def session_views(db: Database, session_id: str) -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT monitor, monitor_jur, from_at, to_at, duration_s FROM live_views "
            "WHERE session_id = ? ORDER BY from_at",
            [session_id],
        )
    )


def add_note(db: Database, case_no: str, actor: str, text: str, at: dt.datetime) -> dict[str, Any]:
    """A ``note`` on the case timeline (the console's call page saves its notes box here)."""
    row = {
        "case_no": case_no,
        "ts": iso(at),
        "kind": "note",
        "actor": actor,
        "detail": json.dumps({"text": text}, ensure_ascii=False),
    }
    with transaction(db):
        db.execute(
            "INSERT INTO case_timeline (case_no, ts, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
            [row["case_no"], row["ts"], row["kind"], row["actor"], row["detail"]],
        )
    return row
