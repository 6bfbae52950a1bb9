"""Taking a step in a case's workflow: check it, apply it, chain it, in one transaction.

Every accepted step is a row of ``transitions``, the hub's own hash chain (痕迹管理): each row's
``hash`` covers its fields and the previous row's hash, so an edit anywhere shows up in
``verify_transitions``. A refused step changes nothing and says why.

All functions here are synchronous and take the database; callers run them through the
store's writer thread.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database

from contracts.access import Role
from contracts.chain import GENESIS, ChainBreak, seal, verify_chain
from hub.errors import HubError
from hub.workflow.calendar import DayKind, add_days
from hub.workflow.deadlines import close_deadlines, open_deadlines, refresh_lights
from hub.workflow.policy import Policies, Track
from hub.workflow.states import PETITIONER, TRANSITIONS, Action, State
from runtime.sqlite import transaction

CHINA = dt.timezone(dt.timedelta(hours=8), "CST")
"""Deadlines count days in China's time zone (no daylight saving)."""


def china_today(now: dt.datetime) -> dt.date:
    return now.astimezone(CHINA).date()


class WorkflowError(HubError):
    """A workflow step was refused; ``status`` is the HTTP status that fits."""

    status = 409

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.detail = detail


class CaseNotFound(WorkflowError):
    """No case with that number."""

    status = 404


class StepForbidden(WorkflowError):
    """The actor's role (or unit) may not take this step."""

    status = 403


class StepInvalid(WorkflowError):
    """The step lacks something it needs (a unit, a reason, reply elements...)."""

    status = 422


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="blob address")
    name: str = Field(min_length=1, max_length=200, description="file name shown")


class Step(BaseModel):
    """One requested step, as the API receives it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    action: Action
    note: str = Field(default="", max_length=4000, description="why, in the actor's words")
    unit_id: str | None = Field(default=None, max_length=64, description="route: the unit")
    assignee: str | None = Field(default=None, max_length=64, description="route: the handler")
    into: str | None = Field(default=None, max_length=64, description="merge: original case")
    days: int | None = Field(default=None, ge=1, le=366, description="extend: extra days")
    elements: dict[str, str] = Field(
        default_factory=dict, description="reply: its required elements, by name"
    )
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)


@dataclass(frozen=True, slots=True)
class Actor:
    username: str
    role: Role | None
    """``None``: the petitioner, on the public query page."""
    jurisdiction: str
    unit_id: str | None = None

    @property
    def role_name(self) -> str:
        return self.role.value if self.role else PETITIONER


@dataclass(frozen=True, slots=True)
class Rules:
    """What the engine needs from configuration."""

    policies: Policies
    reply_elements: tuple[str, ...]

    def track(self, track_id: str | None) -> Track:
        return self.policies.tracks[track_id or self.policies.default_track]


def case_row(db: Database, case_no: str) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM cases WHERE case_no = ?", [case_no]))
    if not rows:
        raise CaseNotFound(f"no case {case_no!r}")
    return rows[0]


def _check_role(actor: Actor, action: Action, case: dict[str, Any]) -> None:
    rule = TRANSITIONS[action]
    if not rule.roles:
        if actor.role is not None:
            raise StepForbidden(f"{action.value!r} is the petitioner's own step")
        return
    if actor.role not in rule.roles:
        roles = sorted(r.value for r in rule.roles)
        raise StepForbidden(
            f"role {actor.role_name!r} may not {action.value!r}; allowed: {roles}",
            allowed_roles=roles,
        )
    if not str(case["township"]).startswith(actor.jurisdiction):
        raise StepForbidden(
            f"case {case['case_no']!r} is outside jurisdiction {actor.jurisdiction}"
        )
    if actor.role is Role.UNIT and case["unit_id"] and actor.unit_id != case["unit_id"]:
        raise StepForbidden(
            f"case {case['case_no']!r} is assigned to unit {case['unit_id']!r}, "
            f"not {actor.unit_id!r}"
        )


def _entered(db: Database, case_no: str, state: State) -> dt.date | None:
    """The China date the case last entered ``state`` (registration for ``registered``)."""
    if state is State.REGISTERED:
        row = db.execute("SELECT registered_at FROM cases WHERE case_no = ?", [case_no]).fetchone()
        return china_today(dt.datetime.fromisoformat(row[0])) if row else None
    row = db.execute(
        "SELECT ts FROM transitions WHERE case_no = ? AND to_state = ? ORDER BY id DESC LIMIT 1",
        [case_no, state.value],
    ).fetchone()
    return china_today(dt.datetime.fromisoformat(row[0])) if row else None


def _check_windows(
    db: Database, track: Track, case_no: str, action: Action, today: dt.date
) -> None:
    for window in track.windows:
        if window.allows != action.value:
            continue
        since = _entered(db, case_no, window.after)
        if since is None:
            continue
        closes = add_days(since, window.days, DayKind(window.day_kind), roll_to_working_day=True)
        if today > closes.date:
            raise StepInvalid(
                f"{window.label_zh} closed on {closes.date.isoformat()} "
                f"({window.days} {window.day_kind} days after {window.after.value})",
                window=window.kind,
                closed_on=closes.date.isoformat(),
            )


def _check_specifics(
    db: Database, rules: Rules, case: dict[str, Any], step: Step, today: dt.date
) -> dict[str, Any]:
    """Action-specific checks; returns what goes into the transition's ``detail``."""
    action = step.action
    detail: dict[str, Any] = {}
    if action is Action.ROUTE:
        if not step.unit_id:
            raise StepInvalid("route needs 'unit_id', the responsible unit", field="unit_id")
        unit = db.execute("SELECT jurisdiction FROM units WHERE id = ?", [step.unit_id]).fetchone()
        if unit is None:
            raise StepInvalid(f"no unit {step.unit_id!r}", field="unit_id")
        if not (case["township"].startswith(unit[0]) or unit[0].startswith(case["township"])):
            raise StepInvalid(
                f"unit {step.unit_id!r} ({unit[0]}) does not cover township {case['township']}",
                field="unit_id",
            )
        detail = {"unit_id": step.unit_id, "assignee": step.assignee}
    elif action is Action.MERGE:
        if not step.into or step.into == case["case_no"]:
            raise StepInvalid("merge needs 'into', another case's number", field="into")
        original = db.execute(
            "SELECT state, township FROM cases WHERE case_no = ?", [step.into]
        ).fetchone()
        if original is None:
            raise StepInvalid(f"no case {step.into!r} to merge into", field="into")
        if State(original[0]).closed:
            raise StepInvalid(f"case {step.into!r} is {original[0]}; merge into an open case")
        detail = {"into": step.into}
    elif action is Action.EXTEND:
        rule = rules.track(case["track"]).extension
        if rule is None:
            raise StepInvalid(f"track {case['track']!r} allows no extension")
        if not step.days or step.days > rule.max_days:
            raise StepInvalid(f"extend needs 'days', 1 to {rule.max_days}", field="days")
        if rule.requires_reason and not step.note.strip():
            raise StepInvalid("extend needs the reason in 'note'", field="note")
        row = db.execute(
            "SELECT extensions FROM deadlines WHERE case_no = ? AND kind = ? AND state = 'open'",
            [case["case_no"], rule.deadline],
        ).fetchone()
        if row is None:
            raise StepInvalid(f"no open {rule.deadline!r} deadline to extend")
        if row[0] >= rule.max_count:
            raise StepInvalid(f"already extended {row[0]} time(s); at most {rule.max_count}")
        detail = {"deadline": rule.deadline, "days": step.days, "approver": None}
    elif action is Action.REPLY:
        missing = [e for e in rules.reply_elements if not step.elements.get(e, "").strip()]
        if missing:
            raise StepInvalid(
                "reply returned (发回重办): missing " + "、".join(missing), missing=missing
            )
        detail = {"elements": {e: step.elements[e] for e in rules.reply_elements}}
    elif action is Action.SUPERVISE and not step.note.strip():
        raise StepInvalid("督办 needs its instruction in 'note'", field="note")
    _check_windows(db, rules.track(case["track"]), case["case_no"], action, today)
    return detail


def apply_step(
    db: Database, rules: Rules, case_no: str, actor: Actor, step: Step, now: dt.datetime
) -> dict[str, Any]:
    """Check and apply ``step`` to ``case_no``; returns the chained transition row.

    Raises a ``WorkflowError`` subclass (and writes nothing) when the step is refused.
    """
    today = china_today(now)
    with transaction(db):
        case = case_row(db, case_no)
        state = State(case["state"])
        _check_role(actor, step.action, case)
        rule = TRANSITIONS[step.action]
        if state not in rule.sources:
            sources = sorted(s.value for s in rule.sources)
            raise WorkflowError(
                f"cannot {step.action.value!r} case {case_no!r} in state {state.value!r}; "
                f"only from {sources}",
                state=state.value,
            )
        detail = _check_specifics(db, rules, case, step, today)
        if step.attachments:
            detail["attachments"] = [a.model_dump() for a in step.attachments]
        if step.action is Action.EXTEND:
            detail["approver"] = actor.username
        target = rule.target or state
        ts = now.isoformat(timespec="milliseconds")
        _update_case(db, case, step, actor, target, ts)
        track = rules.track(case["track"])
        if rule.target is not None:
            close_deadlines(db, case_no, target, track, today, ts)
            open_deadlines(db, case_no, target, track, today)
        if step.action is Action.EXTEND:
            _extend(db, case_no, track, step.days or 0)
        row = chain_transition(
            db,
            {
                "case_no": case_no,
                "action": step.action.value,
                "from_state": state.value,
                "to_state": target.value,
                "actor": actor.username,
                "role": actor.role_name,
                "note": step.note,
                "detail": detail,
                "ts": ts,
            },
        )
        db.execute(
            "INSERT INTO case_timeline (case_no, ts, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
            [case_no, ts, "transition", actor.username, row["detail"]],
        )
        refresh_lights(db, today, [case_no])
    return row


def _update_case(
    db: Database, case: dict[str, Any], step: Step, actor: Actor, target: State, ts: str
) -> None:
    sets: dict[str, Any] = {}
    if target.value != case["state"]:
        sets |= {"state": target.value, "state_at": ts}
    if step.action is Action.ROUTE:
        # the case's deadlines, ratings and transitions follow it to the unit (their copies
        # of unit_id are moved by the trigger cases_scope_moves, migration 0010)
        sets |= {"unit_id": step.unit_id, "assignee": step.assignee}
    elif step.action is Action.MERGE:
        sets["merged_into"] = step.into
        for a, b in ((case["case_no"], step.into), (step.into, case["case_no"])):
            db.execute(
                "INSERT OR REPLACE INTO case_links (case_no, other, kind, score, reasons, "
                "created_at) VALUES (?, ?, 'merged', 1.0, '[]', ?)",
                [a, b, ts],
            )
    elif step.action is Action.SUPERVISE:
        sets |= {"supervised_at": ts, "supervised_reason": "manual"}
    elif actor.role is Role.UNIT and step.action in (Action.ACCEPT, Action.START, Action.REPLY):
        sets["assignee"] = actor.username
    if target.closed:
        sets |= {"supervised_at": None, "supervised_reason": None}
    if sets:
        assignments = ", ".join(f"{k} = ?" for k in sets)
        db.execute(
            f"UPDATE cases SET {assignments} WHERE case_no = ?", [*sets.values(), case["case_no"]]
        )


def _extend(db: Database, case_no: str, track: Track, days: int) -> None:
    assert track.extension is not None
    row = db.execute(
        "SELECT id, due, day_kind FROM deadlines WHERE case_no = ? AND kind = ?",
        [case_no, track.extension.deadline],
    ).fetchone()
    due = add_days(dt.date.fromisoformat(row[1]), days, DayKind(row[2]))
    db.execute(
        "UPDATE deadlines SET due = ?, estimated = max(estimated, ?), "
        "extended_days = extended_days + ?, extensions = extensions + 1 WHERE id = ?",
        [due.date.isoformat(), int(due.estimated), days, row[0]],
    )


def chain_transition(db: Database, record: dict[str, Any]) -> dict[str, Any]:
    """Append ``record`` to the hub's transition chain; returns the row as stored."""
    last = db.execute("SELECT hash FROM transitions ORDER BY id DESC LIMIT 1").fetchone()
    sealed = seal(record, last[0] if last else GENESIS)
    row = {**sealed, "detail": orjson.dumps(sealed["detail"], option=orjson.OPT_SORT_KEYS).decode()}
    cursor = db.execute(
        "INSERT INTO transitions (case_no, action, from_state, to_state, actor, role, note, "
        "detail, ts, prev_hash, hash) VALUES (:case_no, :action, :from_state, :to_state, "
        ":actor, :role, :note, :detail, :ts, :prev_hash, :hash)",
        row,
    )
    return {"id": cursor.lastrowid, **row}


def verify_transitions(db: Database) -> ChainBreak | None:
    """Recompute the hub's transition chain from its start; the first break, or ``None``."""
    records = (
        {**r, "detail": orjson.loads(r["detail"])}
        for r in db.query(
            "SELECT case_no, action, from_state, to_state, actor, role, note, detail, ts, "
            "prev_hash, hash FROM transitions ORDER BY id"
        )
    )
    return verify_chain(records)
