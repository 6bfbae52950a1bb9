"""The workflow engine on a real SQLite database: every transition allowed and refused by
role, reply completeness, extension, review windows, the transition chain, and the deadline
scan's reminders (exactly once) and 督办 list."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from contracts.access import Role
from hub.config import REPLY_ELEMENTS
from hub.pii import PiiVault
from hub.store.migrations import migrations
from hub.workflow.engine import (
    Actor,
    Rules,
    Step,
    StepForbidden,
    StepInvalid,
    WorkflowError,
    apply_step,
    verify_transitions,
)
from hub.workflow.policy import load_policies
from hub.workflow.scanner import scan
from hub.workflow.seed import generate, insert_cases
from hub.workflow.states import TRANSITIONS, Action, State
from runtime.sqlite import open_database

TOWNSHIP = "510104021"
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # a Monday, 10:00 in China
OFFICE = Actor("office", Role.PETITION_OFFICE, "510104")
UNIT = Actor("handler", Role.UNIT, "510104", "jj-zjj")
OTHER_UNIT = Actor("other", Role.UNIT, "510104", "jj-rsj")
OFFICIAL = Actor("leader", Role.OFFICIAL, "5101")
MONITOR = Actor("watcher", Role.MONITOR, "5101")
ELEMENTS = {e: f"{e}（内容）" for e in REPLY_ELEMENTS}


@pytest.fixture
def rules() -> Rules:
    return Rules(load_policies(), REPLY_ELEMENTS)


@pytest.fixture
def db(tmp_path: Path, rules: Rules) -> Iterator[Database]:
    database = open_database(tmp_path / "hub.db", migrations)
    rows = generate(PiiVault(b"k" * 32), [TOWNSHIP], 6, start=T0 - dt.timedelta(days=1), days=1)
    insert_cases(database, rows)
    database["units"].insert_all(
        [
            {
                "id": "jj-zjj",
                "name_zh": "锦江区住建局",
                "name_en": "Housing",
                "jurisdiction": "510104",
                "supervisor": "zjj-chief",
                "created_at": T0.isoformat(),
            },
            {
                "id": "jj-rsj",
                "name_zh": "锦江区人社局",
                "name_en": "HR",
                "jurisdiction": "510104",
                "supervisor": None,
                "created_at": T0.isoformat(),
            },
            {
                "id": "qy-zjj",
                "name_zh": "青羊区住建局",
                "name_en": "Housing",
                "jurisdiction": "510105",
                "supervisor": None,
                "created_at": T0.isoformat(),
            },
        ]
    )
    scan(database, rules, T0)
    yield database
    database.close()


def cases(db: Database) -> list[str]:
    return [r[0] for r in db.execute("SELECT case_no FROM cases ORDER BY case_no")]


def state(db: Database, case_no: str) -> str:
    return str(db.execute("SELECT state FROM cases WHERE case_no = ?", [case_no]).fetchone()[0])


def step(db: Database, rules: Rules, case_no: str, actor: Actor, action: Action, after: int = 0,
         **fields: object) -> dict[str, object]:  # fmt: skip
    """Take ``action`` ``after`` days after T0."""
    return apply_step(
        db,
        rules,
        case_no,
        actor,
        Step.model_validate({"action": action, **fields}),
        T0 + dt.timedelta(days=after),
    )


def to_handling(db: Database, rules: Rules, case_no: str) -> None:
    step(db, rules, case_no, OFFICE, Action.ROUTE, unit_id="jj-zjj", assignee="handler")
    step(db, rules, case_no, UNIT, Action.ACCEPT, after=1)
    step(db, rules, case_no, UNIT, Action.START, after=1)


@pytest.mark.parametrize("action", list(Action))
def test_each_action_is_refused_to_roles_it_does_not_name(
    db: Database, rules: Rules, action: Action
) -> None:
    case_no = cases(db)[0]
    for role in Role:
        if role in TRANSITIONS[action].roles or role is Role.BOX:
            continue
        expected = "petitioner's own" if action is Action.EVALUATE else f"role '{role.value}'"
        with pytest.raises(StepForbidden, match=expected):
            step(db, rules, case_no, Actor("x", role, "51"), action, note="n", unit_id="jj-zjj")
    assert state(db, case_no) == "registered"


def test_the_full_path_is_allowed_to_the_right_roles_and_chained(
    db: Database, rules: Rules
) -> None:
    case_no = cases(db)[0]
    to_handling(db, rules, case_no)
    assert state(db, case_no) == "handling"
    with pytest.raises(StepForbidden, match="assigned to unit 'jj-zjj'"):
        step(db, rules, case_no, OTHER_UNIT, Action.REPLY, elements=ELEMENTS)
    with pytest.raises(WorkflowError, match=r"cannot 'archive' case .* in state 'handling'"):
        step(db, rules, case_no, OFFICE, Action.ARCHIVE)
    step(db, rules, case_no, UNIT, Action.REPLY, after=10, elements=ELEMENTS)
    step(db, rules, case_no, OFFICE, Action.REQUEST_REVIEW, after=20)
    step(db, rules, case_no, OFFICIAL, Action.ANSWER_REVIEW, after=30)
    step(db, rules, case_no, OFFICE, Action.ARCHIVE, after=31)
    assert state(db, case_no) == "archived"
    actions = [r[0] for r in db.execute("SELECT action FROM transitions ORDER BY id")]
    assert actions == ["route", "accept", "start", "reply", "request_review", "answer_review",
                       "archive"]  # fmt: skip
    assert verify_transitions(db) is None
    db.execute("UPDATE transitions SET note = 'edited' WHERE action = 'reply'")
    broken = verify_transitions(db)
    assert broken is not None and broken.index == 3


def test_a_county_actor_cannot_touch_another_countys_case(db: Database, rules: Rules) -> None:
    outsider = Actor("qy-office", Role.PETITION_OFFICE, "510105")
    with pytest.raises(StepForbidden, match="outside jurisdiction 510105"):
        step(db, rules, cases(db)[0], outsider, Action.ROUTE, unit_id="qy-zjj")
    with pytest.raises(StepInvalid, match="does not cover township"):
        step(db, rules, cases(db)[0], OFFICE, Action.ROUTE, unit_id="qy-zjj")


def test_an_incomplete_reply_is_refused_with_what_is_missing(db: Database, rules: Rules) -> None:
    case_no = cases(db)[0]
    to_handling(db, rules, case_no)
    partial = {k: v for k, v in ELEMENTS.items() if k not in ("答复意见书", "信访人签字")}
    with pytest.raises(StepInvalid) as refused:
        step(db, rules, case_no, UNIT, Action.REPLY, elements={**partial, "送达时间": "  "})
    assert refused.value.detail["missing"] == ["答复意见书", "送达时间", "信访人签字"]
    assert "发回重办" in str(refused.value)
    assert state(db, case_no) == "handling"


def test_one_extension_with_reason_and_approver_moves_the_handle_deadline(
    db: Database, rules: Rules
) -> None:
    case_no = cases(db)[0]
    to_handling(db, rules, case_no)
    due = db.execute("SELECT due FROM deadlines WHERE case_no=? AND kind='handle'", [case_no])
    before = dt.date.fromisoformat(due.fetchone()[0])
    with pytest.raises(StepInvalid, match="reason"):
        step(db, rules, case_no, OFFICIAL, Action.EXTEND, days=30)
    with pytest.raises(StepInvalid, match="1 to 30"):
        step(db, rules, case_no, OFFICIAL, Action.EXTEND, days=31, note="情况复杂")
    row = step(db, rules, case_no, OFFICIAL, Action.EXTEND, days=30, note="情况复杂")
    assert '"approver":"leader"' in str(row["detail"])
    after = db.execute(
        "SELECT due, extensions FROM deadlines WHERE case_no=? AND kind='handle'", [case_no]
    ).fetchone()
    assert dt.date.fromisoformat(after[0]) >= before + dt.timedelta(days=30) and after[1] == 1
    assert state(db, case_no) == "extended"


def test_a_review_after_its_window_is_refused(db: Database, rules: Rules) -> None:
    case_no = cases(db)[0]
    to_handling(db, rules, case_no)
    step(db, rules, case_no, UNIT, Action.REPLY, after=5, elements=ELEMENTS)
    with pytest.raises(StepInvalid, match="closed on"):
        step(db, rules, case_no, OFFICE, Action.REQUEST_REVIEW, after=5 + 45)


def test_merge_links_cases_and_keeps_the_originals_deadlines(db: Database, rules: Rules) -> None:
    original, duplicate = cases(db)[:2]
    before = db.execute("SELECT * FROM deadlines WHERE case_no = ?", [original]).fetchall()
    step(db, rules, duplicate, OFFICE, Action.MERGE, into=original, note="同一事项")
    assert state(db, duplicate) == "merged"
    assert db.execute("SELECT * FROM deadlines WHERE case_no = ?", [original]).fetchall() == before
    stopped = db.execute("SELECT DISTINCT state FROM deadlines WHERE case_no = ?", [duplicate])
    assert [r[0] for r in stopped] == ["stopped"]


def test_reminders_fire_once_and_overdue_cases_are_supervised(db: Database, rules: Rules) -> None:
    case_no = cases(db)[0]
    to_handling(db, rules, case_no)  # handle: 60 days from T0 + 1 day
    due = dt.date.fromisoformat(
        db.execute(
            "SELECT due FROM deadlines WHERE case_no=? AND kind='handle'", [case_no]
        ).fetchone()[0]
    )

    def notes() -> list[tuple[str, str]]:
        return db.execute(
            "SELECT kind, recipient FROM notifications WHERE case_no = ? AND deadline_id = "
            "(SELECT id FROM deadlines WHERE case_no = ? AND kind = 'handle') ORDER BY kind, "
            "recipient",
            [case_no, case_no],
        ).fetchall()

    at = dt.datetime.combine(due, dt.time(2), dt.UTC)
    for _ in range(3):
        scan(db, rules, at - dt.timedelta(days=20))
    assert notes() == []
    for _ in range(3):
        scan(db, rules, at - dt.timedelta(days=14))
    assert notes() == [("before_15", "handler"), ("before_15", "zjj-chief")]
    scan(db, rules, at - dt.timedelta(days=2))
    scan(db, rules, at + dt.timedelta(days=1))
    scan(db, rules, at + dt.timedelta(days=2))
    assert notes() == [
        ("before_15", "handler"),
        ("before_15", "zjj-chief"),
        ("before_3", "handler"),
        ("before_3", "zjj-chief"),
        ("overdue", "handler"),
        ("overdue", "zjj-chief"),
    ]
    row = db.execute(
        "SELECT light, supervised_reason FROM cases WHERE case_no = ?", [case_no]
    ).fetchone()
    assert row == ("red", "overdue")


def test_new_cases_are_adopted_with_their_first_deadline(db: Database) -> None:
    rows = db.execute(
        "SELECT c.track, c.light, d.kind, d.due FROM cases c JOIN deadlines d USING (case_no)"
    ).fetchall()
    assert len(rows) == 6
    # 15 calendar days from 2026-03-01 (registration day in China) is 2026-03-16, a Monday.
    assert {(r[0], r[2]) for r in rows} == {("regulation", "route")}
    assert {r[3] for r in rows} <= {"2026-03-16", "2026-03-17"}
    assert {r[1] for r in rows} == {"green"}
    assert State.REGISTERED.value == "registered"


def test_a_repeated_scan_writes_nothing_and_an_extension_relights_a_red_case(
    db: Database, rules: Rules
) -> None:
    case_no = cases(db)[0]
    to_handling(db, rules, case_no)
    due = dt.date.fromisoformat(
        db.execute(
            "SELECT due FROM deadlines WHERE case_no=? AND kind='handle'", [case_no]
        ).fetchone()[0]
    )
    late = (due - T0.date()).days + 1
    at = T0 + dt.timedelta(days=late)
    first = scan(db, rules, at)
    assert first.reminders > 0 and first.supervised == len(cases(db))
    written = db.conn.total_changes
    again = scan(db, rules, at)
    assert (again.reminders, again.supervised) == (0, 0)
    assert db.conn.total_changes == written  # nothing crossed a threshold: nothing written

    light = "SELECT light, next_due FROM cases WHERE case_no = ?"
    assert db.execute(light, [case_no]).fetchone() == ("red", due.isoformat())
    step(db, rules, case_no, OFFICIAL, Action.EXTEND, after=late, days=30, note="情况复杂")
    relit, next_due = db.execute(light, [case_no]).fetchone()
    assert relit == "green" and next_due > due.isoformat()
    scan(db, rules, at)
    assert db.execute(light, [case_no]).fetchone() == (relit, next_due)
    overdue = "SELECT count(*) FROM notifications WHERE case_no = ? AND kind = 'overdue'"
    assert db.execute(overdue, [case_no]).fetchone()[0] == 2  # handler and the unit's chief
