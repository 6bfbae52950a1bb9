"""Likely duplicates on a real SQLite hub database: who is suggested and why, what is left
out (closed, linked, out of the window or the jurisdiction), recording the suggestions, the
bounded search on many cases, and merging (并案) through the real workflow engine."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from contracts.access import Role
from hub.config import REPLY_ELEMENTS
from hub.pii import PiiVault
from hub.store.migrations import migrations
from hub.store.projection import CASE_COLUMNS, query_code_hash
from hub.workflow import duplicates
from hub.workflow.engine import (
    Actor,
    Rules,
    Step,
    StepForbidden,
    StepInvalid,
    apply_step,
    verify_transitions,
)
from hub.workflow.policy import load_policies
from hub.workflow.scanner import scan
from hub.workflow.seed import generate, id_number, insert_cases
from hub.workflow.states import Action
from runtime.sqlite import open_database

JINJIANG, QINGYANG = "510104021", "510105002"
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
VAULT = PiiVault(b"d" * 32)
RNG = random.Random(7)
ZHANG, LI, WANG = (id_number(RNG, JINJIANG) for _ in range(3))
OFFICE = Actor("office", Role.PETITION_OFFICE, "510104")
UNIT = Actor("handler", Role.UNIT, "510104", "jj-zjj")

BUILDING = "要求查处小区内违法建筑，已反映多次至今未处理。"
BUILDING_AGAIN = "要求查处 小区内违法建筑 已反映多次，至今未处理！！"
WAGES = "反映某公司拖欠农民工工资三个月。"
NOISE = "建议增设公交线路站点，方便老人出行。"


@pytest.fixture
def rules() -> Rules:
    return Rules(load_policies(), REPLY_ELEMENTS)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "hub.db", migrations)
    yield database
    database.close()


def add(
    db: Database,
    case_no: str,
    *,
    person: str = ZHANG,
    content: str = BUILDING,
    unit: str = "锦江区住建局",
    township: str = JINJIANG,
    days: float = 0,
    state: str = "registered",
    category: str = "claim",
    start: dt.datetime = T0,
    vault: PiiVault = VAULT,
) -> str:
    """One case registered ``days`` after ``start``, as the ingest projection writes it."""
    at = (start + dt.timedelta(days=days)).isoformat(timespec="milliseconds")
    enc, hmac, masked = vault.seal_id(person)
    row: dict[str, Any] = {
        "case_no": case_no,
        "node": f"box-{township}-1",
        "township": township,
        "registered_at": at,
        "name": "张伟",
        "id_enc": enc,
        "id_hmac": hmac,
        "id_masked": masked,
        "phone": "13800000000",
        "address": "某村",
        "category": category,
        "concerned_unit": unit,
        "content": content,
        "query_code_hash": query_code_hash(case_no, "12345678"),
        "state": state,
        "photos_total": 0,
        "photos_verified": 0,
        "complete": 1,
        "seq": 1,
        "created_at": at,
    }
    assert tuple(row) == tuple(c.strip() for c in CASE_COLUMNS.split(","))
    db["cases"].insert(row)
    return case_no


def found(db: Database, case_no: str, **kwargs: Any) -> dict[str, tuple[str, ...]]:
    return {s.case_no: s.reasons for s in duplicates.suggest(db, case_no, **kwargs)}


# -- suggestions -------------------------------------------------------------------------------


def test_the_same_petitioner_with_other_content_is_suggested(db: Database) -> None:
    add(db, "A")
    add(db, "B", content=WAGES, unit="锦江区人社局", days=30)
    assert found(db, "A") == {"B": ("same_petitioner",)}
    assert found(db, "B") == {"A": ("same_petitioner",)}


def test_similar_content_to_the_same_unit_is_suggested(db: Database) -> None:
    """Another petitioner, the same complaint written with other spaces and punctuation (and
    the unit's name in full-width characters)."""
    add(db, "A")
    add(db, "B", person=LI, content=BUILDING_AGAIN, unit="锦江区住建局 ", days=-20)
    [suggestion] = duplicates.suggest(db, "A")
    assert suggestion.case_no == "B"
    assert suggestion.reasons == ("same_unit", "similar_text")
    assert [r.label_zh for r in suggestion.labelled()] == ["同一被反映单位", "诉求内容相似"]
    assert suggestion.text_similarity > 0.9
    assert 0 < suggestion.score <= 1


def test_contained_text_counts_as_similar(db: Database) -> None:
    add(db, "A", content="要求查处违法建筑")
    add(db, "B", person=LI, content="关于小区问题：要求查处违法建筑，并恢复绿地原貌", days=1)
    assert found(db, "A") == {"B": ("same_unit", "similar_text")}


def test_unrelated_cases_are_not_suggested(db: Database) -> None:
    """Another petitioner and other content: a shared concerned unit alone suggests nothing;
    similar content in another county is not searched."""
    add(db, "A")
    add(db, "B", person=LI, content=NOISE, days=2)
    add(db, "C", person=WANG, township=QINGYANG, unit="青羊区住建局", days=3)
    assert found(db, "A") == {}


def test_the_best_suggestion_comes_first(db: Database) -> None:
    add(db, "A")
    add(db, "SAME_PERSON_SAME_TEXT", content=BUILDING_AGAIN, days=5)
    add(db, "OTHER_PERSON_SAME_TEXT", person=LI, content=BUILDING_AGAIN, days=1)
    add(db, "SAME_PERSON_OTHER_TEXT", content=WAGES, unit="锦江区人社局", days=2)
    suggestions = duplicates.suggest(db, "A")
    assert [s.case_no for s in suggestions] == [
        "SAME_PERSON_SAME_TEXT",
        "SAME_PERSON_OTHER_TEXT",
        "OTHER_PERSON_SAME_TEXT",
    ]
    assert suggestions[0].reasons == ("same_petitioner", "same_unit", "similar_text")
    assert suggestions[0].score > 0.95
    assert duplicates.suggest(db, "A", limit=1)[0].case_no == "SAME_PERSON_SAME_TEXT"


@pytest.mark.parametrize("state", ["not_accepted", "merged", "archived"])
def test_closed_cases_are_left_out(db: Database, state: str) -> None:
    add(db, "A")
    add(db, "CLOSED", content=BUILDING_AGAIN, days=1, state=state)
    add(db, "OPEN", days=2, state="handling")
    assert found(db, "A") == {"OPEN": ("same_petitioner", "same_unit", "similar_text")}


def test_only_cases_in_the_window(db: Database) -> None:
    add(db, "A")
    add(db, "LAST_YEAR", days=-200)
    add(db, "NEXT_YEAR", days=200)
    add(db, "RECENT", days=-179)
    assert set(found(db, "A")) == {"RECENT"}
    assert set(found(db, "A", days=365)) == {"RECENT", "LAST_YEAR", "NEXT_YEAR"}


def test_candidates_outside_the_jurisdiction_or_hidden_are_left_out(db: Database) -> None:
    add(db, "A")
    add(db, "OTHER_COUNTY", township=QINGYANG, days=1)
    add(db, "ACCUSATION", days=2, category="accusation")
    assert set(found(db, "A")) == {"OTHER_COUNTY", "ACCUSATION"}
    assert set(found(db, "A", within="510104")) == {"ACCUSATION"}
    assert set(found(db, "A", hidden_categories=("accusation",))) == {"OTHER_COUNTY"}


def test_an_unknown_case_has_no_suggestions(db: Database) -> None:
    assert duplicates.suggest(db, "NOPE") == []


def test_recorded_suggestions_link_both_ways_once(db: Database) -> None:
    add(db, "A")
    add(db, "B", content=WAGES, days=1)
    add(db, "C", person=LI, days=2)
    add(db, "D", person=WANG, content=NOISE, days=3)
    assert duplicates.suggest_new(db, ["A", "D"], T0) == 4
    assert duplicates.record(db, "A", duplicates.suggest(db, "A"), T0) == 0
    links = {
        (r["case_no"], r["other"]): r["reasons"]
        for r in db.query("SELECT case_no, other, reasons FROM case_links WHERE kind = 'duplicate'")
    }
    assert set(links) == {("A", "B"), ("B", "A"), ("A", "C"), ("C", "A")}
    assert [(r["other"], r["reasons"]) for r in duplicates.recorded(db, "C")] == [
        ("A", ["same_unit", "similar_text"])
    ]
    # A recorded suggestion is still suggested (the console lists it); other links are not.
    assert set(found(db, "A")) == {"B", "C"}


def test_the_search_stays_bounded_on_many_cases(db: Database) -> None:
    """20,000 generated cases in one county: the candidates are capped and found through
    the indexes, so a suggestion costs the same with 200,000."""
    townships = [f"510104{n:03d}" for n in range(1, 11)]
    rows = generate(VAULT, townships, 20_000, start=T0 - dt.timedelta(days=90), days=180)
    insert_cases(db, rows)
    case_no = add(db, "A")
    case = duplicates.load(db, case_no)
    assert case is not None
    compared = duplicates.candidates(db, case)
    assert len(compared) <= duplicates.COUNTY_CAP + duplicates.PETITIONER_CAP
    assert {c.township for c in compared} == set(townships)
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        suggestions = duplicates.suggest(db, case_no)
    finally:
        db.conn.set_trace_callback(None)
    reads = [sql for sql in statements if "FROM cases" in sql]
    assert len(reads) >= 2 + 2 * len(townships)
    for sql in reads:
        plan = " / ".join(str(r[-1]) for r in db.execute("EXPLAIN QUERY PLAN " + sql))
        assert "SEARCH cases USING" in plan, (sql, plan)
        assert "SCAN cases" not in plan and "TEMP B-TREE" not in plan, (sql, plan)
    assert len(suggestions) == 10
    assert all(s.score >= suggestions[-1].score for s in suggestions)


# -- merging (并案) through the workflow engine -------------------------------------------------


def deadlines(db: Database, case_no: str) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM deadlines WHERE case_no = ? ORDER BY id", [case_no]))


def test_merge_links_the_cases_and_keeps_the_originals_deadlines(
    db: Database, rules: Rules
) -> None:
    add(db, "ORIGINAL", days=-3)
    add(db, "REPEAT", content=BUILDING_AGAIN)
    scan(db, rules, T0)
    before = deadlines(db, "ORIGINAL")
    assert before and all(d["state"] == "open" for d in before)
    assert "ORIGINAL" in found(db, "REPEAT")
    now = T0 + dt.timedelta(days=2)

    row = apply_step(
        db, rules, "REPEAT", OFFICE, Step(action=Action.MERGE, into="ORIGINAL", note="重复件"), now
    )

    assert (row["from_state"], row["to_state"]) == ("registered", "merged")
    merged = db.execute("SELECT state, merged_into FROM cases WHERE case_no = 'REPEAT'").fetchone()
    assert merged == ("merged", "ORIGINAL")
    links = set(db.execute("SELECT case_no, other FROM case_links WHERE kind = 'merged'"))
    assert links == {("REPEAT", "ORIGINAL"), ("ORIGINAL", "REPEAT")}
    assert deadlines(db, "ORIGINAL") == before
    assert {d["state"] for d in deadlines(db, "REPEAT")} == {"stopped"}
    assert verify_transitions(db) is None
    # Merged and linked: neither is suggested for the other any more.
    assert found(db, "ORIGINAL") == {}
    assert found(db, "REPEAT") == {}


def test_a_unit_may_not_merge(db: Database, rules: Rules) -> None:
    add(db, "ORIGINAL", days=-3)
    add(db, "REPEAT")
    with pytest.raises(StepForbidden) as refused:
        apply_step(db, rules, "REPEAT", UNIT, Step(action=Action.MERGE, into="ORIGINAL"), T0)
    assert refused.value.status == 403
    assert refused.value.detail == {"allowed_roles": ["petition_office"]}
    assert db.execute("SELECT state FROM cases WHERE case_no = 'REPEAT'").fetchone() == (
        "registered",
    )


@pytest.mark.parametrize(
    ("into", "original_state"),
    [("REPEAT", "registered"), ("ORIGINAL", "archived"), ("ORIGINAL", "merged"), ("NONE", "")],
)
def test_merge_needs_another_open_case(
    db: Database, rules: Rules, into: str, original_state: str
) -> None:
    add(db, "ORIGINAL", days=-3, state=original_state or "registered")
    add(db, "REPEAT")
    with pytest.raises(StepInvalid) as refused:
        apply_step(db, rules, "REPEAT", OFFICE, Step(action=Action.MERGE, into=into), T0)
    assert refused.value.status == 422
    assert db.execute(
        "SELECT state, merged_into FROM cases WHERE case_no = 'REPEAT'"
    ).fetchone() == (
        "registered",
        None,
    )
    assert db.execute("SELECT count(*) FROM case_links").fetchone() == (0,)
