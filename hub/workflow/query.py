"""The petitioner's own view of a case: check a query code, tell the case's story in plain
words, take the petitioner's rating.

A petitioner has no account: the case number and the secret query code printed on their receipt
are the key. Wrong codes are counted in ``query_attempts`` (so the limits hold across a hub
restart) and limited per case and per client address; while a limit holds even the right code
is refused, so guessing cannot go on in the meantime. The plain timeline shows what happened
and when, never who did it, internal notes or reply texts.

All functions here are synchronous and take the database; callers run them through the
store's writer thread.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlite_utils import Database

from hub.store.projection import query_code_hash
from hub.workflow.engine import (
    Actor,
    Rules,
    Step,
    StepInvalid,
    WorkflowError,
    apply_step,
    case_row,
    china_today,
)
from hub.workflow.scanner import OFFICE_PREFIX
from hub.workflow.states import PETITIONER, Action, State
from runtime.sqlite import transaction

WINDOW = dt.timedelta(minutes=15)
"""The period over which wrong query codes are counted."""
CASE_LIMIT = 5
"""Wrong codes for one case number within ``WINDOW`` after which that case refuses every code
(the right one too) until the oldest of them leaves the window: 5 guesses of an 8-digit code
per 15 minutes makes guessing one case hopeless."""
CLIENT_LIMIT = 20
"""Wrong codes from one client address within ``WINDOW``, over all case numbers, after which
that address is refused for every case: stops guessing spread over many cases."""


ATTEMPTS_KEPT = dt.timedelta(days=1)
"""How long ``query_attempts`` rows (case number, client address, time, right or wrong) are
kept: the limits need ``WINDOW`` of them; a day more lets an administrator look into a
guessing attack. Older rows are deleted by :func:`prune_attempts` (client addresses are
personal data, kept no longer than that)."""


class AlreadyRated(WorkflowError):
    """The petitioner has already rated this case; a rating is given once."""

    status = 409


class Rating(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"

    @property
    def label_zh(self) -> str:
        return _RATING_ZH[self]


_RATING_ZH = {
    Rating.SATISFIED: "满意",
    Rating.BASICALLY_SATISFIED: "基本满意",
    Rating.DISSATISFIED: "不满意",
}


class Outcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    """No such case, or not its code: the caller must not say which."""
    LIMITED = "limited"


@dataclass(frozen=True, slots=True)
class Check:
    """The answer to one query code."""

    outcome: Outcome
    retry_after: int = 0
    """``LIMITED``: seconds until the limit lifts."""
    scope: str = ""
    """``LIMITED``: ``"case"`` or ``"client"``, the limit that holds."""
    tripped: bool = False
    """``WRONG``: this attempt reached a limit (worth one log line; later refusals are not)."""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds")


_SCOPES = (("case", "case_no", CASE_LIMIT), ("client", "client", CLIENT_LIMIT))
"""Each limit: its name, the ``query_attempts`` column it counts by, the count."""


def _wait(db: Database, column: str, value: str, limit: int, now: dt.datetime) -> int | None:
    """Seconds until ``column = value`` has fewer than ``limit`` wrong codes in the window;
    ``None`` when it already has."""
    rows = db.execute(
        f"SELECT ts FROM query_attempts WHERE {column} = ? AND ts > ? AND ok = 0 ORDER BY ts",
        [value, _iso(now - WINDOW)],
    ).fetchall()
    if len(rows) < limit:
        return None
    frees = dt.datetime.fromisoformat(rows[len(rows) - limit][0]) + WINDOW
    return max(1, math.ceil((frees - now).total_seconds()))


def _limit(db: Database, case_no: str, client: str, now: dt.datetime) -> Check | None:
    """The limit that holds for this case and client now, if any."""
    values = {"case_no": case_no, "client": client}
    for scope, column, limit in _SCOPES:
        wait = _wait(db, column, values[column], limit, now)
        if wait is not None:
            return Check(Outcome.LIMITED, retry_after=wait, scope=scope)
    return None


def check_code(db: Database, case_no: str, code: str, client: str, now: dt.datetime) -> Check:
    """Check ``code`` for ``case_no`` asked from ``client`` and count the attempt.

    A refusal for a limit is not counted (an attacker cannot extend it by hammering, and a
    petitioner's lock ends on time); it is the caller's to audit.
    """
    with transaction(db):
        limited = _limit(db, case_no, client, now)
        if limited is not None:
            return limited
        row = db.execute(
            "SELECT query_code_hash FROM cases WHERE case_no = ?", [case_no]
        ).fetchone()
        ok = bool(row and row[0]) and hmac.compare_digest(
            str(row[0]), query_code_hash(case_no, code)
        )
        db.execute(
            "INSERT INTO query_attempts (case_no, client, ts, ok) VALUES (?, ?, ?, ?)",
            [case_no, client, _iso(now), int(ok)],
        )
        if ok:
            return Check(Outcome.OK)
        return Check(Outcome.WRONG, tripped=_limit(db, case_no, client, now) is not None)


def prune_attempts(db: Database, now: dt.datetime) -> int:
    """Delete the query attempts older than ``ATTEMPTS_KEPT``; returns how many."""
    with transaction(db):
        cursor = db.execute("DELETE FROM query_attempts WHERE ts < ?", [_iso(now - ATTEMPTS_KEPT)])
    return cursor.rowcount


# -- the plain timeline --------------------------------------------------------------------

PLAIN_STATE: dict[State, tuple[str, str]] = {
    State.REGISTERED: ("已登记，等待转交办理", "Registered, waiting to be passed on"),
    State.ROUTED: ("已转交办理单位", "Passed on to the responsible unit"),
    State.ACCEPTED: ("已受理", "Accepted"),
    State.NOT_ACCEPTED: ("不予受理", "Not accepted"),
    State.MERGED: ("已与相同事项合并办理", "Handled together with the same matter"),
    State.HANDLING: ("正在办理", "Being handled"),
    State.EXTENDED: ("正在办理（已延期）", "Being handled (time extended)"),
    State.REPLIED: ("已答复，请评价", "Answered: please rate"),
    State.EVALUATED: ("已答复，您已评价", "Answered and rated"),
    State.REVIEW: ("复查中", "Under review"),
    State.REVIEWED: ("已作出复查意见", "Review answered"),
    State.RECHECK: ("复核中", "Under recheck"),
    State.RECHECKED: ("已作出复核意见", "Recheck answered"),
    State.ARCHIVED: ("已办结", "Concluded"),
}
"""A case's state as the petitioner reads it (Chinese, English)."""

_STEP_TEXT: dict[Action, tuple[str, str]] = {
    Action.ROUTE: ("已转交{unit}办理", "Passed on to {unit}"),
    Action.ACCEPT: ("已受理，正在安排办理", "Accepted for handling"),
    Action.NOT_ACCEPT: (
        "经审查不予受理，书面告知将送达您",
        "Not accepted; you will be told why in writing",
    ),
    Action.MERGE: (
        "您反映的事项与已登记的相同事项合并办理",
        "Handled together with the same matter already registered",
    ),
    Action.START: ("责任单位正在办理", "The responsible unit is handling it"),
    Action.EXTEND: ("办理期限依法延长{days}天", "Handling time extended by {days} days"),
    Action.REPLY: ("已答复", "Answered"),
    Action.RETURN: ("答复退回重新办理", "The answer was sent back to be redone"),
    Action.EVALUATE: ("您已评价，谢谢", "You rated the handling; thank you"),
    Action.REQUEST_REVIEW: ("复查申请已受理", "Your request for review was received"),
    Action.ANSWER_REVIEW: ("已作出复查意见", "The review was answered"),
    Action.REQUEST_RECHECK: ("复核申请已受理", "Your request for recheck was received"),
    Action.ANSWER_RECHECK: ("已作出复核意见", "The recheck was answered"),
    Action.ARCHIVE: ("已办结", "Concluded"),
}
"""What each step tells the petitioner. 督办 (supervision) is internal and left out."""

REPLY_ASKS_RATING = ("已答复，请评价", "Answered: please rate")


def _entry(at: str, kind: str, zh: str, en: str) -> dict[str, Any]:
    when = dt.datetime.fromisoformat(at)
    return {"at": when, "date": china_today(when).isoformat(), "kind": kind, "zh": zh, "en": en}


def _unit_names(db: Database, unit_id: str | None) -> tuple[str, str]:
    row = db.execute("SELECT name_zh, name_en FROM units WHERE id = ?", [unit_id or ""]).fetchone()
    if row is None:
        return "责任单位", "the responsible unit"
    return str(row[0]), str(row[1] or row[0])


def _step_text(db: Database, action: Action, detail: dict[str, Any]) -> tuple[str, str] | None:
    text = _STEP_TEXT.get(action)
    if text is None:
        return None
    zh, en = text
    if action is Action.ROUTE:
        unit_zh, unit_en = _unit_names(db, detail.get("unit_id"))
        return zh.format(unit=unit_zh), en.format(unit=unit_en)
    if action is Action.EXTEND:
        days = int(detail.get("days") or 0)
        return zh.format(days=days), en.format(days=days)
    return zh, en


def plain_timeline(db: Database, case_no: str) -> list[dict[str, str]]:
    """What happened to ``case_no``, oldest first, as ``{date, kind, zh, en}`` (China dates):
    its registration, documents received (once a day) and each workflow step in plain words,
    never who took it or why. Raises ``CaseNotFound``."""
    case = case_row(db, case_no)
    registered = ("您的信访事项已登记", "Your petition was registered")
    entries = [_entry(case["registered_at"], "registered", *registered)]
    photo_days: set[str] = set()
    for (ts,) in db.execute(
        "SELECT ts FROM case_timeline WHERE case_no = ? AND kind = 'photo_added' ORDER BY id",
        [case_no],
    ):
        entry = _entry(ts, "material", "您提交的材料已收到", "Your documents were received")
        if entry["date"] not in photo_days:
            photo_days.add(entry["date"])
            entries.append(entry)
    for action, detail, ts in db.execute(
        "SELECT action, detail, ts FROM transitions WHERE case_no = ? ORDER BY id", [case_no]
    ):
        text = _step_text(db, Action(action), json.loads(detail))
        if text is not None:
            entries.append(_entry(ts, action, *text))
    entries.sort(key=lambda e: e["at"])  # stable: steps at the same instant keep their order
    if can_rate(db, case):
        for entry in reversed(entries):
            if entry["kind"] == Action.REPLY:
                entry["zh"], entry["en"] = REPLY_ASKS_RATING
                break
    return [{k: v for k, v in e.items() if k != "at"} for e in entries]


def can_rate(db: Database, case: dict[str, Any]) -> bool:
    """Whether the petitioner may rate now: answered, not yet rated."""
    if case["state"] != State.REPLIED:
        return False
    rated = db.execute("SELECT 1 FROM ratings WHERE case_no = ?", [case["case_no"]]).fetchone()
    return rated is None


def status(db: Database, case_no: str) -> dict[str, Any]:
    """The public page's view of ``case_no`` (call only after ``check_code`` said OK)."""
    case = case_row(db, case_no)
    state = State(case["state"])
    zh, en = PLAIN_STATE[state]
    rating = db.execute("SELECT office, unit FROM ratings WHERE case_no = ?", [case_no]).fetchone()
    return {
        "case_no": case_no,
        "state": state.value,
        "state_label": {"zh": zh, "en": en},
        "timeline": plain_timeline(db, case_no),
        "can_rate": can_rate(db, case),
        "rating": {"office": rating[0], "unit": rating[1]} if rating else None,
    }


# -- the rating ----------------------------------------------------------------------------


def _rating(name: str, value: Rating | str) -> Rating:
    try:
        return Rating(value)
    except ValueError:
        allowed = [r.value for r in Rating]
        raise StepInvalid(f"{name} must be one of {allowed}, got {value!r}", field=name) from None


def rate(
    db: Database,
    rules: Rules,
    case_no: str,
    office: Rating | str,
    unit: Rating | str,
    comment: str,
    client: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """Record the petitioner's rating of the petition office and of the responsible unit and
    take the EVALUATE step, in one transaction; a 不满意 for either opens a follow-up and
    notifies the officials. Returns the rating row with ``followup`` (bool).

    Raises ``AlreadyRated`` for a second rating, and the engine's ``WorkflowError`` when the
    case is not in state ``replied``.
    """
    office_r, unit_r = _rating("office", office), _rating("unit", unit)
    comment = comment.strip()
    ts = _iso(now)
    with transaction(db):
        case = case_row(db, case_no)
        if db.execute("SELECT 1 FROM ratings WHERE case_no = ?", [case_no]).fetchone():
            raise AlreadyRated(f"case {case_no!r} has already been rated")
        note = f"信访部门：{office_r.label_zh}；责任单位：{unit_r.label_zh}"
        apply_step(
            db,
            rules,
            case_no,
            Actor(username=PETITIONER, role=None, jurisdiction=""),
            Step(action=Action.EVALUATE, note=note),
            now,
        )
        db.execute(
            "INSERT INTO ratings (case_no, office, unit, comment, rated_at, client) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [case_no, office_r.value, unit_r.value, comment, ts, client],
        )
        dissatisfied = Rating.DISSATISFIED in (office_r, unit_r)
        if dissatisfied:
            _follow_up(db, case, office_r, unit_r, comment, ts)
    return {
        "case_no": case_no,
        "office": office_r.value,
        "unit": unit_r.value,
        "comment": comment,
        "rated_at": ts,
        "followup": dissatisfied,
    }


def _follow_up(
    db: Database, case: dict[str, Any], office: Rating, unit: Rating, comment: str, ts: str
) -> None:
    whom = "、".join(
        name for name, r in (("信访部门", office), ("责任单位", unit)) if r is Rating.DISSATISFIED
    )
    reason = f"信访人对{whom}的处理不满意" + (f"：{comment}" if comment else "")
    db.execute(
        "INSERT INTO followups (case_no, kind, reason, created_at, assignee) "
        "VALUES (?, 'dissatisfied', ?, ?, ?) ON CONFLICT (case_no, kind) DO NOTHING",
        [case["case_no"], reason, ts, case["assignee"]],
    )
    recipient = case["assignee"] or OFFICE_PREFIX + str(case["township"])[:6]
    text = f"案件 {case['case_no']} 的信访人对{whom}的处理不满意，请跟进回访。"
    db.execute(
        "INSERT INTO notifications (case_no, kind, recipient, channel, text, created_at) "
        "VALUES (?, 'dissatisfied', ?, 'console', ?, ?)",
        [case["case_no"], recipient, text, ts],
    )
