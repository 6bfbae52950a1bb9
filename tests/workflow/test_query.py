"""The petitioner's query code, plain timeline and rating, on a real SQLite hub database."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from contracts.access import Role
from hub.config import REPLY_ELEMENTS
from hub.pii import PiiVault
from hub.store.migrations import migrations
from hub.store.projection import query_code_hash
from hub.workflow import query
from hub.workflow.engine import (
    Actor,
    Rules,
    Step,
    StepInvalid,
    WorkflowError,
    apply_step,
    verify_transitions,
)
from hub.workflow.policy import load_policies
from hub.workflow.query import AlreadyRated, Outcome, Rating, check_code, plain_timeline, rate
from hub.workflow.seed import generate, insert_cases
from hub.workflow.states import Action
from runtime.sqlite import open_database

CODE = "12345678"
TOWNSHIP = "510104021"
UNIT_ID = "u-jj-zjj"
UNIT_NAME = "锦江区住房和城乡建设局"
NOW = dt.datetime(2025, 3, 10, 2, 0, tzinfo=dt.UTC)
OFFICE = Actor("office-wang", Role.PETITION_OFFICE, "510104")
UNIT = Actor("unit-li", Role.UNIT, "510104", unit_id=UNIT_ID)
SECRET_NOTE = "内部意见：信访人情绪激动，注意稳控"


def rules() -> Rules:
    return Rules(load_policies(), REPLY_ELEMENTS)


def add_cases(db: Database, count: int, seed: int = 7) -> list[str]:
    """``count`` generated cases in ``TOWNSHIP`` whose query code is ``CODE``, and the unit."""
    vault = PiiVault(bytes(range(32)))
    start = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)
    insert_cases(db, generate(vault, [TOWNSHIP], count, start=start, days=1, seed=seed))
    numbers = [r[0] for r in db.execute("SELECT case_no FROM cases ORDER BY case_no")]
    for case_no in numbers:
        db.execute(
            "UPDATE cases SET query_code_hash = ? WHERE case_no = ?",
            [query_code_hash(case_no, CODE), case_no],
        )
    db.execute(
        "INSERT OR IGNORE INTO units (id, name_zh, name_en, jurisdiction, created_at) "
        "VALUES (?, ?, 'Jinjiang Housing Bureau', '510104', ?)",
        [UNIT_ID, UNIT_NAME, NOW.isoformat()],
    )
    db.conn.commit()
    return numbers


def reply(db: Database, r: Rules, case_no: str, *, by_unit: bool = True) -> None:
    """Route ``case_no`` and take it to ``replied``: by the unit's handler (who becomes its
    assignee) or, with ``by_unit=False``, all by the petition office (no assignee)."""
    doer = UNIT if by_unit else OFFICE
    at = NOW - dt.timedelta(days=3)
    steps = [
        (OFFICE, Step(action=Action.ROUTE, unit_id=UNIT_ID, note=SECRET_NOTE)),
        (doer, Step(action=Action.ACCEPT)),
        (doer, Step(action=Action.START, note=SECRET_NOTE)),
        (doer, Step(action=Action.REPLY, elements={e: f"{e}：已办" for e in REPLY_ELEMENTS})),
    ]
    for n, (actor, step) in enumerate(steps):
        apply_step(db, r, case_no, actor, step, at + dt.timedelta(hours=n))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "hub.db", migrations)
    yield database
    database.close()


def test_the_right_code_opens_the_case_and_a_wrong_one_or_unknown_case_does_not(
    db: Database,
) -> None:
    case_no = add_cases(db, 1)[0]
    assert check_code(db, case_no, CODE, "10.0.0.1", NOW).outcome is Outcome.OK
    assert check_code(db, case_no, "87654321", "10.0.0.1", NOW).outcome is Outcome.WRONG
    assert check_code(db, "510104021-NOPE", CODE, "10.0.0.1", NOW).outcome is Outcome.WRONG
    attempts = list(db.query("SELECT case_no, client, ok FROM query_attempts ORDER BY id"))
    assert [(a["case_no"], a["ok"]) for a in attempts] == [
        (case_no, 1),
        (case_no, 0),
        ("510104021-NOPE", 0),
    ]


def test_five_wrong_codes_lock_the_case_even_for_the_right_code_until_the_window_passes(
    db: Database,
) -> None:
    case_no, other = add_cases(db, 2)
    first = NOW
    for n in range(query.CASE_LIMIT):
        check = check_code(
            db, case_no, f"0000000{n}", f"10.0.0.{n}", first + dt.timedelta(minutes=n)
        )
        assert check.outcome is Outcome.WRONG
        assert check.tripped is (n == query.CASE_LIMIT - 1)
    later = first + dt.timedelta(minutes=6)
    locked = check_code(db, case_no, CODE, "10.0.9.9", later)
    assert locked.outcome is Outcome.LIMITED and locked.scope == "case"
    assert locked.retry_after == 9 * 60  # the first wrong code leaves the window at +15 min
    # the refusal itself is not counted, and other cases are not affected
    assert db.execute("SELECT count(*) FROM query_attempts").fetchone()[0] == query.CASE_LIMIT
    assert check_code(db, other, CODE, "10.0.9.9", later).outcome is Outcome.OK
    # once the first wrong code is older than the window, four remain: the right code works
    assert check_code(db, case_no, CODE, "10.0.9.9", first + query.WINDOW).outcome is Outcome.OK


def test_twenty_wrong_codes_from_one_address_lock_it_out_of_every_case(db: Database) -> None:
    numbers = add_cases(db, 6)
    guesser, other = "192.0.2.7", "192.0.2.8"
    for n in range(query.CLIENT_LIMIT):
        case_no = numbers[n % 5]  # 4 wrong codes per case: under the per-case limit
        check = check_code(db, case_no, f"{n:08d}", guesser, NOW + dt.timedelta(seconds=n))
        assert check.outcome is Outcome.WRONG
    locked = check_code(db, numbers[5], CODE, guesser, NOW + dt.timedelta(seconds=30))
    assert locked.outcome is Outcome.LIMITED and locked.scope == "client"
    assert 0 < locked.retry_after <= query.WINDOW.total_seconds()
    assert check_code(db, numbers[5], CODE, other, NOW + dt.timedelta(seconds=30)).ok


def test_attempts_older_than_a_day_are_pruned_and_the_limits_still_hold(db: Database) -> None:
    case_no, other = add_cases(db, 2)
    old = NOW - query.ATTEMPTS_KEPT - dt.timedelta(minutes=1)
    for n in range(3):  # a day and a minute ago
        check_code(db, other, f"9999999{n}", "192.0.2.50", old + dt.timedelta(seconds=n))
    for n in range(query.CASE_LIMIT):  # just now
        check_code(db, case_no, f"0000000{n}", "192.0.2.51", NOW + dt.timedelta(seconds=n))
    later = NOW + dt.timedelta(minutes=1)
    assert query.prune_attempts(db, later) == 3
    clients = {r[0] for r in db.execute("SELECT client FROM query_attempts")}
    assert clients == {"192.0.2.51"}
    assert check_code(db, case_no, CODE, "192.0.2.52", later).outcome is Outcome.LIMITED
    assert query.prune_attempts(db, later) == 0


def test_the_limit_holds_across_a_restart(tmp_path: Path, db: Database) -> None:
    case_no = add_cases(db, 1)[0]
    for n in range(query.CASE_LIMIT):
        check_code(db, case_no, f"9999999{n}", "10.0.0.1", NOW)
    db.close()
    reopened = open_database(tmp_path / "hub.db", migrations)
    try:
        check = check_code(reopened, case_no, CODE, "10.0.0.1", NOW + dt.timedelta(minutes=1))
        assert check.outcome is Outcome.LIMITED
    finally:
        reopened.close()


def test_the_plain_timeline_tells_each_step_without_names_notes_or_ids(db: Database) -> None:
    r = rules()
    case_no = add_cases(db, 1)[0]
    assert [e["zh"] for e in plain_timeline(db, case_no)] == ["您的信访事项已登记"]
    reply(db, r, case_no)
    timeline = plain_timeline(db, case_no)
    assert [e["zh"] for e in timeline] == [
        "您的信访事项已登记",
        f"已转交{UNIT_NAME}办理",
        "已受理，正在安排办理",
        "责任单位正在办理",
        "已答复，请评价",
    ]
    assert timeline[0]["date"] in ("2025-03-03", "2025-03-04")  # registered within a day
    assert timeline[1]["date"] == "2025-03-07"  # NOW - 3 days, 10:00 China time
    assert timeline[1]["en"] == "Passed on to Jinjiang Housing Bureau"
    case = next(db.query("SELECT name, id_masked, phone FROM cases WHERE case_no = ?", [case_no]))
    shown = json.dumps(timeline, ensure_ascii=False)
    hidden = [SECRET_NOTE, "office-wang", "unit-li", "答复意见书", "经办人签字"]
    for secret in [*hidden, case["name"], case["id_masked"], case["phone"]]:
        assert secret not in shown
    rate(db, r, case_no, Rating.SATISFIED, Rating.SATISFIED, "", "10.0.0.1", NOW)
    after = [e["zh"] for e in plain_timeline(db, case_no)]
    assert after[-2:] == ["已答复", "您已评价，谢谢"]


def test_a_rating_is_taken_once_and_moves_the_case_to_evaluated(db: Database) -> None:
    r = rules()
    case_no = add_cases(db, 1)[0]
    reply(db, r, case_no)
    status = query.status(db, case_no)
    assert status["can_rate"] is True and status["state_label"]["zh"] == "已答复，请评价"
    out = rate(db, r, case_no, "satisfied", "basically_satisfied", "  谢谢  ", "10.0.0.1", NOW)
    assert out["followup"] is False and out["comment"] == "谢谢"
    row = next(db.query("SELECT * FROM ratings WHERE case_no = ?", [case_no]))
    assert (row["office"], row["unit"], row["client"]) == (
        "satisfied",
        "basically_satisfied",
        "10.0.0.1",
    )
    last = next(db.query("SELECT * FROM transitions ORDER BY id DESC LIMIT 1"))
    assert (last["action"], last["actor"], last["role"], last["to_state"]) == (
        "evaluate",
        "petitioner",
        "petitioner",
        "evaluated",
    )
    assert last["note"] == "信访部门：满意；责任单位：基本满意"
    assert verify_transitions(db) is None
    assert query.status(db, case_no)["can_rate"] is False
    with pytest.raises(AlreadyRated) as refused:
        rate(db, r, case_no, "dissatisfied", "dissatisfied", "", "10.0.0.1", NOW)
    assert refused.value.status == 409 and "already been rated" in str(refused.value)
    assert db.execute("SELECT count(*) FROM followups").fetchone()[0] == 0
    assert (
        db.execute("SELECT count(*) FROM transitions WHERE action = 'evaluate'").fetchone()[0] == 1
    )


def test_a_case_not_yet_answered_cannot_be_rated_and_nothing_is_written(db: Database) -> None:
    case_no = add_cases(db, 1)[0]
    with pytest.raises(WorkflowError) as refused:
        rate(db, rules(), case_no, "satisfied", "satisfied", "", "10.0.0.1", NOW)
    assert refused.value.status == 409 and "'registered'" in str(refused.value)
    assert db.execute("SELECT count(*) FROM ratings").fetchone()[0] == 0
    assert query.status(db, case_no)["can_rate"] is False


def test_a_rating_outside_the_three_answers_is_refused(db: Database) -> None:
    r = rules()
    case_no = add_cases(db, 1)[0]
    reply(db, r, case_no)
    with pytest.raises(StepInvalid) as refused:
        rate(db, r, case_no, "very_happy", "satisfied", "", "10.0.0.1", NOW)
    assert refused.value.status == 422 and "'very_happy'" in str(refused.value)
    assert query.status(db, case_no)["state"] == "replied"


def test_dissatisfied_opens_a_followup_and_tells_the_case_handler(db: Database) -> None:
    r = rules()
    case_no = add_cases(db, 1)[0]
    reply(db, r, case_no)
    out = rate(db, r, case_no, Rating.SATISFIED, Rating.DISSATISFIED, "没有解决", "1.2.3.4", NOW)
    assert out["followup"] is True
    follow = next(db.query("SELECT * FROM followups WHERE case_no = ?", [case_no]))
    assert follow["kind"] == "dissatisfied" and follow["assignee"] == "unit-li"
    assert follow["reason"] == "信访人对责任单位的处理不满意：没有解决"
    note = next(db.query("SELECT * FROM notifications WHERE case_no = ?", [case_no]))
    assert (note["recipient"], note["channel"], note["kind"]) == (
        "unit-li",
        "console",
        "dissatisfied",
    )
    assert case_no in note["text"] and "不满意" in note["text"]


def test_dissatisfied_without_a_handler_goes_to_the_county_office(db: Database) -> None:
    r = rules()
    case_no = add_cases(db, 1)[0]
    reply(db, r, case_no, by_unit=False)
    rate(db, r, case_no, Rating.DISSATISFIED, Rating.DISSATISFIED, "", "1.2.3.4", NOW)
    follow = next(db.query("SELECT * FROM followups WHERE case_no = ?", [case_no]))
    assert follow["assignee"] is None
    assert follow["reason"] == "信访人对信访部门、责任单位的处理不满意"
    recipients = [r[0] for r in db.execute("SELECT recipient FROM notifications")]
    assert recipients == ["office:510104"]
