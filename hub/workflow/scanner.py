"""The deadline scan: adopt newly ingested cases under the default track, refresh every light,
write the reminders that fall due, and put overdue cases on the 督办 (supervision) list.

Everything is set-based SQL in one transaction, so a scan of every open deadline is cheap and a
crash part-way leaves nothing half done. A reminder is a ``notifications`` row whose UNIQUE key
(case, deadline, kind, recipient, channel) makes it fire exactly once, however many scans and
hub restarts pass over it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import orjson
from sqlite_utils import Database

from hub.workflow.deadlines import before, open_deadlines, refresh_lights
from hub.workflow.engine import Rules, china_today
from hub.workflow.states import State
from runtime.sqlite import transaction

log = logging.getLogger(__name__)

OFFICE_PREFIX = "office:"
"""Recipient of a case with no assignee: the petition office of its county (``office:510104``),
seen by every petition_office user whose jurisdiction covers that county."""


@dataclass(frozen=True, slots=True)
class ScanResult:
    adopted: list[str]
    """Cases taken into the workflow by this scan (their duplicates are looked for next)."""
    reminders: int
    supervised: int


def adopt(db: Database, rules: Rules) -> list[str]:
    """Give cases the ingest wrote (``track`` NULL) the default track and their first
    deadlines, counted from their registration day; returns their numbers."""
    track = rules.track(None)
    rows = db.execute(
        "SELECT case_no, registered_at FROM cases WHERE track IS NULL AND state = ?",
        [State.REGISTERED.value],
    ).fetchall()
    for case_no, registered_at in rows:
        day = china_today(dt.datetime.fromisoformat(registered_at))
        open_deadlines(db, case_no, State.REGISTERED, track, day)
    db.execute(
        "UPDATE cases SET track = ?, state_at = coalesce(state_at, registered_at) "
        "WHERE track IS NULL",
        [track.id],
    )
    return [r[0] for r in rows]


def _labels(rules: Rules) -> tuple[str, list[str]]:
    """A SQL CASE naming each deadline kind in Chinese, and its arguments."""
    labels: dict[str, str] = {}
    for track in rules.policies.tracks.values():
        for rule in track.deadlines:
            labels.setdefault(rule.kind, rule.label_zh)
    whens = " ".join("WHEN ? THEN ?" for _ in labels)
    args = [v for pair in labels.items() for v in pair]
    return f"CASE d.kind {whens} ELSE d.kind END", args


RECIPIENTS: tuple[tuple[str, str, list[object]], ...] = (
    ("coalesce(c.assignee, ? || substr(c.township, 1, 6))", "", [OFFICE_PREFIX]),
    ("u.supervisor", "JOIN units u ON u.id = c.unit_id AND u.supervisor IS NOT NULL", []),
)
"""Who hears about a case's deadlines: its assignee (or its county's petition office) and
its unit's supervisor: (recipient expression, join, arguments)."""


PENDING = "INDEXED BY deadlines_overdue_pending"
"""The open deadlines whose overdue reminder is not yet written: SQLite without ``ANALYZE``
statistics would rather walk every overdue deadline by due date."""


def _notify(
    db: Database,
    rules: Rules,
    channel: str,
    kind: str,
    text: str,
    where: str,
    args: list[object],
    ts: str,
    hint: str = "",
) -> int:
    """Insert (or ignore, when already there) one notification per matching open deadline
    and recipient; returns how many were new."""
    label, label_args = _labels(rules)
    sent = ts if channel == "console" else None
    written = 0
    for recipient, join, recipient_args in RECIPIENTS:
        written += db.execute(
            "INSERT OR IGNORE INTO notifications (case_no, deadline_id, kind, recipient, "
            f"channel, text, created_at, sent_at) SELECT d.case_no, d.id, ?, {recipient}, ?, "
            f"'案件 ' || d.case_no || ' 的「' || {label} || '」' || {text}, ?, ? "
            f"FROM deadlines d {hint} JOIN cases c ON c.case_no = d.case_no {join} "
            f"WHERE d.state = 'open' AND {where}",
            [kind, *recipient_args, channel, *label_args, ts, sent, *args],
        ).rowcount
    return written


def remind(db: Database, rules: Rules, today: dt.date, channels: list[str], ts: str) -> int:
    """Write the reminders due today: ``before_N`` when N or fewer days are left (only for
    deadlines longer than N days) and ``overdue`` after the due date. Returns how many new.

    Each deadline remembers the smallest N it was reminded of (``reminded_days``) and whether
    its overdue reminder was written (``overdue_noted``, set by :func:`supervise_overdue`), so
    a scan looks only at deadlines with something left to say."""
    written = 0
    offsets: set[tuple[str, int]] = set()
    for kind, reminders in db.execute(
        "SELECT DISTINCT day_kind, reminders FROM deadlines WHERE state = 'open'"
    ):
        offsets.update((kind, int(days)) for days in orjson.loads(reminders))
    for kind, days in sorted(offsets, key=lambda o: -o[1]):
        where = (
            "d.day_kind = ? AND d.due >= ? AND d.due < ? "
            "AND julianday(d.due) - julianday(d.started_on) > ? "
            "AND (d.reminded_days IS NULL OR d.reminded_days > ?) "
            "AND EXISTS (SELECT 1 FROM json_each(d.reminders) j WHERE j.value = ?)"
        )
        args: list[object] = [kind, today.isoformat(), before(today, days, kind), days, days, days]
        for channel in channels:
            written += _notify(
                db,
                rules,
                channel,
                f"before_{days}",
                "'期限将于 ' || d.due || ' 届满，请及时办理'",
                where,
                args,
                ts,
            )
        db.execute(
            f"UPDATE deadlines AS d SET reminded_days = ? WHERE d.state = 'open' AND {where}",
            [days, *args],
        )
    for channel in channels:
        written += _notify(
            db,
            rules,
            channel,
            "overdue",
            "'已于 ' || d.due || ' 超期，已列入督办'",
            "d.due < ? AND d.overdue_noted = 0",
            [today.isoformat()],
            ts,
            hint=PENDING,
        )
    return written


def supervise_overdue(db: Database, today: dt.date, ts: str) -> int:
    """Put every case with a newly overdue open deadline on the 督办 list (once), and mark
    those deadlines noted: run after :func:`remind`, which writes their overdue reminders."""
    today_iso = today.isoformat()
    cursor = db.execute(
        "UPDATE cases SET supervised_at = ?, supervised_reason = 'overdue' "
        f"WHERE case_no IN (SELECT case_no FROM deadlines {PENDING} "
        "WHERE state = 'open' AND due < ? AND overdue_noted = 0) AND +supervised_at IS NULL",
        [ts, today_iso],
    )
    db.execute(
        f"UPDATE deadlines {PENDING} SET overdue_noted = 1 "
        "WHERE state = 'open' AND due < ? AND overdue_noted = 0",
        [today_iso],
    )
    return cursor.rowcount


def scan(
    db: Database,
    rules: Rules,
    now: dt.datetime,
    channels: list[str] | None = None,
    *,
    rebuild: bool = False,
) -> ScanResult:
    """One full scan, in one transaction. ``rebuild``: recompute every case's light, not only
    those whose deadlines changed (the hub does so once as it starts)."""
    today = china_today(now)
    ts = now.isoformat(timespec="milliseconds")
    with transaction(db):
        adopted = adopt(db, rules)
        refresh_lights(db, today, rebuild=rebuild)
        reminders = remind(db, rules, today, channels or ["console"], ts)
        supervised = supervise_overdue(db, today, ts)
    if adopted or reminders or supervised:
        log.info(
            "deadline scan: %d cases adopted, %d reminders, %d newly supervised",
            len(adopted),
            reminders,
            supervised,
        )
    return ScanResult(adopted, reminders, supervised)
