"""A case's deadlines: opened when it enters a state, closed when it enters another, and their
traffic lights, all set-based so a scan of every open deadline stays cheap.

A deadline row stays ``open`` until its case enters one of the rule's ``ends_on`` states; it
then becomes ``met`` (on or before the due date) or ``missed``. A case that closes (不予受理,
并案, 归档) stops its open deadlines (``stopped``). Lights are stored on each open deadline and
the worst one, with the earliest due date, on the case (``cases.light``, ``cases.next_due``),
so lists filter and sort on them without computing anything per row.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

import orjson
from sqlite_utils import Database

from hub.workflow.calendar import DayKind, add_days
from hub.workflow.policy import Track
from hub.workflow.states import State


@functools.lru_cache(maxsize=512)
def before(today: dt.date, days: int, kind: str) -> str:
    """The first due date more than ``days`` days (of ``kind``) after ``today``: a deadline
    due before it has ``days`` or fewer days left."""
    return add_days(today, days + 1, DayKind(kind), roll_to_working_day=False).date.isoformat()


def open_deadlines(
    db: Database, case_no: str, entered: State, track: Track, today: dt.date
) -> None:
    """Open the deadlines of ``track`` whose clock starts when a case enters ``entered`` (the
    first time only: a deadline kind is opened once per case), with the case's township and
    unit copied on (for the statistics; migration 0010's triggers keep them moving with it)."""
    for rule in track.deadlines:
        if entered not in rule.starts_on:
            continue
        due = add_days(today, rule.days, DayKind(rule.day_kind))
        db.execute(
            "INSERT OR IGNORE INTO deadlines (case_no, kind, started_on, due, day_kind, "
            "yellow_days, reminders, estimated, state, township, unit_id) "
            "SELECT case_no, ?, ?, ?, ?, ?, ?, ?, 'open', township, unit_id FROM cases "
            "WHERE case_no = ?",
            [
                rule.kind,
                today.isoformat(),
                due.date.isoformat(),
                rule.day_kind,
                track.yellow_days if rule.yellow_days is None else rule.yellow_days,
                orjson.dumps(track.reminders if rule.reminders is None else rule.reminders),
                int(due.estimated),
                case_no,
            ],
        )


def close_deadlines(
    db: Database, case_no: str, entered: State, track: Track, today: dt.date, ts: str
) -> None:
    """Close the open deadlines that entering ``entered`` ends (met or missed), or stop all of
    them when ``entered`` closes the case."""
    if entered.closed:
        db.execute(
            "UPDATE deadlines SET state = 'stopped', ended_at = ?, light = NULL "
            "WHERE case_no = ? AND state = 'open'",
            [ts, case_no],
        )
        return
    ending = [rule.kind for rule in track.deadlines if entered in rule.ends_on]
    if ending:
        marks = ",".join("?" * len(ending))
        db.execute(
            "UPDATE deadlines SET state = CASE WHEN due >= ? THEN 'met' ELSE 'missed' END, "
            "ended_at = ?, light = NULL WHERE case_no = ? AND state = 'open' "
            f"AND kind IN ({marks})",
            [today.isoformat(), ts, case_no, *ending],
        )


LIGHT_OF_DEADLINE = (
    "CASE WHEN due < :today THEN 'red' WHEN due < :yellow THEN 'yellow' ELSE 'green' END"
)
CASE_LIGHTS = (
    "SELECT case_no, min(due) AS next_due, CASE max(CASE light WHEN 'red' THEN 3 "
    "WHEN 'yellow' THEN 2 ELSE 1 END) WHEN 3 THEN 'red' WHEN 2 THEN 'yellow' ELSE 'green' END "
    "AS light FROM deadlines WHERE state = 'open' AND case_no IN ({cases}) GROUP BY case_no"
)
"""Each case's worst open light and earliest due date, for the cases ``{cases}`` selects."""


def refresh_lights(
    db: Database, today: dt.date, cases: Sequence[str] | None = None, *, rebuild: bool = False
) -> int:
    """Recompute the lights of open deadlines, and the worst light and next due date of each
    case whose deadlines changed (with ``rebuild``, of every case), for ``cases`` or
    (``None``) every case; returns how many cases changed.

    Only rows whose light actually changes are written, so a scan on a day when nothing
    crosses a threshold writes nothing. A case left with no open deadline loses its light
    when its own deadlines are refreshed (``cases``): the engine does so for every step."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS lit_cases (case_no TEXT PRIMARY KEY)")
    if cases is not None:
        db.conn.executemany(
            "INSERT OR IGNORE INTO temp.lit_cases VALUES (?)", [(c,) for c in cases]
        )
        scope = " AND case_no IN (SELECT case_no FROM temp.lit_cases)"
    else:
        scope = ""
    groups = db.execute(
        "SELECT DISTINCT day_kind, yellow_days FROM deadlines WHERE state = 'open'" + scope
    ).fetchall()
    for kind, yellow in groups:
        changed = db.execute(
            f"UPDATE deadlines SET light = {LIGHT_OF_DEADLINE} WHERE state = 'open' "
            f"AND day_kind = :kind AND yellow_days = :days{scope} "
            f"AND light IS NOT {LIGHT_OF_DEADLINE} RETURNING case_no",
            {
                "today": today.isoformat(),
                "yellow": before(today, yellow, kind),
                "kind": kind,
                "days": yellow,
            },
        ).fetchall()
        if cases is None:
            db.conn.executemany("INSERT OR IGNORE INTO temp.lit_cases VALUES (?)", changed)
    if rebuild:
        db.execute(
            "INSERT OR IGNORE INTO temp.lit_cases "
            "SELECT case_no FROM deadlines WHERE state = 'open'" + scope
        )
    touched = "SELECT case_no FROM temp.lit_cases"
    updated = db.execute(
        f"UPDATE cases AS c SET light = d.light, next_due = d.next_due FROM "
        f"({CASE_LIGHTS.format(cases=touched)}) AS d WHERE c.case_no = d.case_no "
        "AND (c.light IS NOT d.light OR c.next_due IS NOT d.next_due)"
    ).rowcount
    if cases is not None or rebuild:
        updated += db.execute(
            "UPDATE cases SET light = NULL, next_due = NULL WHERE light IS NOT NULL "
            + ("AND case_no IN (SELECT case_no FROM temp.lit_cases) " if cases is not None else "")
            + "AND case_no NOT IN (SELECT case_no FROM deadlines WHERE state = 'open')"
        ).rowcount
    db.execute("DELETE FROM temp.lit_cases")
    return updated
