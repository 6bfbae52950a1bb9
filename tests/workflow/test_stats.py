"""Statistics, ranking and the monthly report over a small data set with outcomes known by
hand, in a real hub database."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlite_utils import Database

from hub.store.migrations import migrations
from hub.workflow.report import monthly_report, to_csv, to_xlsx
from hub.workflow.stats import (
    Figures,
    Rate,
    Stats,
    StatsError,
    month_period,
    ranking,
    stats,
)
from runtime.sqlite import open_database, transaction

D = dt.date.fromisoformat
APRIL = (D("2026-04-01"), D("2026-04-30"))
TODAY = D("2026-05-10")
T1, T2 = "510104021", "510104022"  # 盐市口街道, 春熙路街道 (锦江区)
T3 = "510105001"  # 太升路街道 (青羊区)

UNITS = [
    ("u1", "锦江区住建局", "Jinjiang Housing Bureau", "510104"),
    ("u2", "锦江区人社局", "Jinjiang HR Bureau", "510104"),
    ("u3", "青羊区住建局", "Qingyang Housing Bureau", "510105"),
    ("u4", "锦江区民政局", "Jinjiang Civil Affairs Bureau", "510104"),  # no cases at all
]
# case_no: (township, registered_at in UTC, category, unit); China time is UTC+8
CASES = {
    "C1": (T1, "2026-03-31T16:30:00.000+00:00", "suggestion", "u1"),  # China 04-01 00:30: in
    "C2": (T1, "2026-04-30T15:59:59.999+00:00", "claim", "u1"),  # China 04-30 23:59: in
    "C3": (T1, "2026-04-30T16:00:00.000+00:00", "claim", "u1"),  # China 05-01 00:00: out
    "C4": (T2, "2026-04-10T02:00:00.000+00:00", "accusation", "u2"),
    "C5": (T3, "2026-04-15T02:00:00.000+00:00", "claim", "u3"),
    "C6": (T1, "2026-03-20T02:00:00.000+00:00", "suggestion", "u1"),
    "C7": (T2, "2026-04-20T02:00:00.000+00:00", "suggestion", None),  # not routed yet
    "C8": (T3, "2026-04-02T02:00:00.000+00:00", "claim", "u3"),
    "C9": (T1, "2026-02-10T02:00:00.000+00:00", "suggestion", "u1"),
    "C10": (T2, "2026-01-05T02:00:00.000+00:00", "claim", "u2"),
    "C11": (T2, "2026-03-01T02:00:00.000+00:00", "claim", "u2"),
    "C12": (T3, "2026-03-15T02:00:00.000+00:00", "claim", "u3"),
}
# (case, kind, due, state, ended_at): what each means for April is in the comment
DEADLINES = [
    ("C1", "route", "2026-04-05", "met", "2026-04-01T03:00:00.000+00:00"),  # C1 has 'accept'
    ("C1", "accept", "2026-04-16", "met", "2026-04-16T15:00:00.000+00:00"),  # met 04-16 23:00
    ("C2", "route", "2026-05-15", "open", None),  # not yet due
    ("C3", "route", "2026-05-16", "met", "2026-04-30T17:00:00.000+00:00"),  # met on 05-01
    ("C4", "route", "2026-04-25", "open", None),  # missed (no 'accept'); overdue on 04-30
    ("C5", "accept", "2026-04-29", "stopped", "2026-04-28T01:00:00.000+00:00"),  # 不予受理 in time
    ("C6", "route", "2026-03-30", "met", "2026-03-25T02:00:00.000+00:00"),  # C6 has 'accept'
    ("C6", "accept", "2026-04-04", "missed", "2026-04-08T02:00:00.000+00:00"),  # missed
    ("C6", "handle", "2026-04-20", "met", "2026-04-20T10:00:00.000+00:00"),  # met
    ("C7", "route", "2026-04-30", "open", None),  # missed: due 04-30, open after it
    ("C8", "accept", "2026-05-03", "met", "2026-04-20T05:00:00.000+00:00"),  # met early
    ("C8", "handle", "2026-04-28", "missed", "2026-05-02T02:00:00.000+00:00"),  # missed; overdue
    ("C9", "handle", "2026-04-15", "stopped", "2026-04-10T02:00:00.000+00:00"),  # merged: neither
    ("C10", "handle", "2026-03-31", "met", "2026-03-31T15:59:00.000+00:00"),  # met in March
    ("C10", "review_answer", "2026-04-05", "open", None),  # overdue (not a rate's deadline)
    ("C10", "recheck_answer", "2026-04-06", "open", None),  # overdue, same case
    ("C11", "handle", "2026-04-12", "stopped", "2026-04-14T02:00:00.000+00:00"),  # stopped late
]
# case: (office, unit, rated_at)
RATINGS = {
    "C6": ("satisfied", "basically_satisfied", "2026-04-21T01:00:00.000+00:00"),
    "C9": ("dissatisfied", "satisfied", "2026-04-30T15:30:00.000+00:00"),  # China 04-30 23:30
    "C10": ("satisfied", "satisfied", "2026-04-30T16:30:00.000+00:00"),  # China 05-01: out
    "C11": ("basically_satisfied", "dissatisfied", "2026-04-05T00:00:00.000+00:00"),
}
# (case, to_state, ts)
TRANSITIONS = [
    ("C6", "replied", "2026-04-20T10:00:00.000+00:00"),
    ("C6", "replied", "2026-04-25T10:00:00.000+00:00"),  # replied again after 发回重办
    ("C9", "replied", "2026-04-09T02:00:00.000+00:00"),
    ("C10", "replied", "2026-04-29T10:00:00.000+00:00"),  # rated in May: still rated
    ("C11", "replied", "2026-03-30T02:00:00.000+00:00"),  # March
    ("C12", "replied", "2026-04-22T02:00:00.000+00:00"),  # not rated
    ("C8", "replied", "2026-05-02T02:00:00.000+00:00"),  # May
    ("C1", "accepted", "2026-04-10T02:00:00.000+00:00"),  # not a reply
]


def seed(db: Database) -> None:
    """Write the data set above into a hub database."""
    with transaction(db):
        for unit, zh, en, jur in UNITS:
            db.execute(
                "INSERT INTO units (id, name_zh, name_en, jurisdiction, created_at) "
                "VALUES (?, ?, ?, ?, '2026-01-01')",
                [unit, zh, en, jur],
            )
        for case_no, (township, at, category, unit) in CASES.items():
            db.execute(
                "INSERT INTO cases (case_no, node, township, registered_at, id_enc, id_hmac, "
                "state, category, unit_id, created_at) VALUES (?, ?, ?, ?, x'00', ?, "
                "'handling', ?, ?, ?)",
                [case_no, f"box-{township}", township, at, case_no, category, unit, at],
            )
        for case_no, kind, due, state, ended in DEADLINES:
            db.execute(
                "INSERT INTO deadlines (case_no, kind, started_on, due, day_kind, yellow_days, "
                "reminders, estimated, state, ended_at) "
                "VALUES (?, ?, '2026-01-01', ?, 'calendar', 3, '[]', 0, ?, ?)",
                [case_no, kind, due, state, ended],
            )
        for case_no, (office, unit, at) in RATINGS.items():
            db.execute(
                "INSERT INTO ratings (case_no, office, unit, rated_at) VALUES (?, ?, ?, ?)",
                [case_no, office, unit, at],
            )
        for n, (case_no, to_state, ts) in enumerate(TRANSITIONS):
            db.execute(
                "INSERT INTO transitions (case_no, action, from_state, to_state, actor, role, "
                "note, detail, ts, prev_hash, hash) VALUES (?, 'x', 'handling', ?, 'someone', "
                "'unit', '', '{}', ?, '', ?)",
                [case_no, to_state, ts, f"hash-{n}"],
            )


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = open_database(tmp_path / "hub.db", migrations)
    seed(database)
    return database


def by_key(result: Stats) -> dict[str | None, Figures]:
    return {g.key: g for g in result.groups}


def test_totals_of_a_month_match_the_hand_count(db: Database) -> None:
    s = stats(db, "5101", *APRIL, today=TODAY)
    t = s.total
    assert t.registered == 6  # C1 C2 C4 C5 C7 C8 (C3 is China 05-01)
    assert t.by_category == {"suggestion": 2, "claim": 3, "accusation": 1}  # C1 C7 | C2 C5 C8 | C4
    # met: C1 accept, C5 stopped in time, C8 accept early; missed: C6 accept, C4 route, C7 route
    assert t.timely_acceptance == Rate(3, 6)
    # met: C6; missed: C8 (due 04-28), C11 (stopped after its due date); C9 stopped in time: out
    assert t.on_time_completion == Rate(1, 3)
    # rated in April: C6 C9 C11; office satisfied C6 C11; unit satisfied C6 C9
    assert t.office_satisfaction == Rate(2, 3)
    assert t.unit_satisfaction == Rate(2, 3)
    # replied in April: C6 (twice) C9 C10 C12; rated: C6 C9 C10
    assert t.participation == Rate(3, 4)
    # open and past due at the end of 04-30: C4 (route), C8 (handle, closed 05-02), C10 (two)
    assert t.overdue == 3
    assert s.as_of == D("2026-04-30")
    assert [(x.code, x.registered) for x in s.by_township] == [(T1, 2), (T2, 2), (T3, 2)]
    assert s.by_township[0].name_zh == "盐市口街道"
    assert s.groups == ()


def test_per_unit_figures(db: Database) -> None:
    groups = by_key(stats(db, "5101", *APRIL, group_by="unit", today=TODAY))
    u1, u2, u3, u4, none = groups["u1"], groups["u2"], groups["u3"], groups["u4"], groups[None]
    assert (u1.registered, u2.registered, u3.registered, none.registered) == (2, 1, 2, 1)
    assert u1.timely_acceptance == Rate(1, 2)  # C1 met, C6 missed
    assert u1.on_time_completion == Rate(1, 1)  # C6
    assert (u1.office_satisfaction, u1.unit_satisfaction) == (Rate(1, 2), Rate(2, 2))
    assert u1.participation == Rate(2, 2)  # C6 C9
    assert u2.timely_acceptance == Rate(0, 1)  # C4
    assert u2.on_time_completion == Rate(0, 1)  # C11
    assert (u2.office_satisfaction, u2.unit_satisfaction) == (Rate(1, 1), Rate(0, 1))  # C11
    assert u2.overdue == 2  # C4, C10
    assert u3.timely_acceptance == Rate(2, 2)  # C5, C8
    assert u3.on_time_completion == Rate(0, 1)  # C8
    assert u3.office_satisfaction == Rate(0, 0)
    assert u3.office_satisfaction.text() == "—"
    assert u3.participation == Rate(0, 1)  # C12
    assert none.name_zh == "未交办"
    assert none.timely_acceptance == Rate(0, 1)  # C7
    assert u4 == Figures("u4", "锦江区民政局", "Jinjiang Civil Affairs Bureau")
    assert not u4.active


def test_per_county_and_township(db: Database) -> None:
    counties = by_key(stats(db, "5101", *APRIL, group_by="county", today=TODAY))
    assert set(counties) == {"510104", "510105"}
    assert counties["510104"].name_zh == "锦江区"
    assert (counties["510104"].registered, counties["510104"].overdue) == (4, 2)
    assert (counties["510105"].registered, counties["510105"].overdue) == (2, 1)
    towns = by_key(stats(db, "5101", *APRIL, group_by="township", today=TODAY))
    assert towns[T3].timely_acceptance == Rate(2, 2)
    assert towns[T2].timely_acceptance == Rate(0, 2)  # C4, C7


def test_a_jurisdiction_or_a_unit_sees_only_its_cases(db: Database) -> None:
    qingyang = stats(db, "510105", *APRIL, group_by="unit", today=TODAY)
    assert qingyang.total.registered == 2  # C5 C8
    assert qingyang.total.timely_acceptance == Rate(2, 2)
    assert qingyang.total.overdue == 1
    assert {g.key for g in qingyang.groups} == {"u3"}  # the Jinjiang units are not listed
    assert [t.code for t in qingyang.by_township] == [T3]
    u2 = stats(db, "5101", *APRIL, unit_id="u2", today=TODAY).total
    assert (u2.registered, u2.overdue, u2.on_time_completion) == (1, 2, Rate(0, 1))


def test_a_deadline_due_today_is_not_missed_yet(db: Database) -> None:
    s = stats(db, "5101", *APRIL, group_by="unit", today=D("2026-04-30"))
    assert by_key(s)[None].timely_acceptance == Rate(0, 0)  # C7 due today
    assert s.total.timely_acceptance == Rate(3, 5)


def test_an_empty_period_has_no_rates(db: Database) -> None:
    t = stats(db, "5101", D("2025-06-01"), D("2025-06-30"), today=TODAY).total
    assert t.registered == 0
    assert t.on_time_completion.value is None
    assert t.on_time_completion.as_dict() == {"met": 0, "total": 0, "rate": None}
    assert t.participation.text() == "—"


def test_bad_requests_are_refused(db: Database) -> None:
    with pytest.raises(StatsError, match="before it starts"):
        stats(db, "5101", D("2026-04-30"), D("2026-04-01"))
    with pytest.raises(StatsError, match="group_by"):
        stats(db, "5101", *APRIL, group_by="street")  # type: ignore[arg-type]
    with pytest.raises(StatsError, match="YYYY-MM"):
        month_period("2026-13")
    assert month_period("2024-02") == (D("2024-02-01"), D("2024-02-29"))
    assert month_period("2026-12") == (D("2026-12-01"), D("2026-12-31"))


def test_ranking_orders_by_completion_then_acceptance_then_satisfaction(db: Database) -> None:
    ranked = ranking(stats(db, "5101", *APRIL, group_by="unit", today=TODAY))
    # u1 completes 1/1; u2 and u3 0/1, u3 accepts 2/2 and u2 0/1; u4 had nothing to do
    assert [(r.rank, r.figures.key) for r in ranked] == [
        (1, "u1"),
        (2, "u3"),
        (3, "u2"),
        (None, "u4"),
    ]


def test_equal_figures_share_a_rank() -> None:
    def unit(key: str, completion: Rate, acceptance: Rate) -> Figures:
        return Figures(key, key, key, 1, {}, acceptance, completion)

    result = Stats(
        "5101",
        *APRIL,
        TODAY,
        APRIL[1],
        None,
        "unit",
        Figures(None, "", ""),
        (
            unit("a", Rate(1, 2), Rate(1, 1)),
            unit("b", Rate(2, 4), Rate(3, 3)),
            unit("c", Rate(0, 0), Rate(1, 1)),  # nothing due: after every real rate
            unit("d", Rate(1, 3), Rate(1, 1)),
        ),
        (),
    )
    assert [(r.rank, r.figures.key) for r in ranking(result)] == [
        (1, "a"),
        (1, "b"),
        (3, "d"),
        (4, "c"),
    ]


def test_report_files_hold_the_same_numbers(db: Database) -> None:
    report = monthly_report(db, "5101", "2026-04", today=TODAY)
    book = load_workbook(io.BytesIO(to_xlsx(report)))
    assert book.sheetnames == ["单位排名", "乡镇统计", "说明"]
    sheet = book["单位排名"]
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    header = table[0]
    assert header[:4] == ["排名", "单位编号", "单位名称", "登记件数"]
    rows = {r[1] or r[2]: dict(zip(header, r, strict=True)) for r in table[1:]}
    assert [r[1] or r[2] for r in table[1:]] == ["u1", "u3", "u2", "u4", "未交办", "合计"]
    u1 = rows["u1"]
    assert (u1["排名"], u1["单位名称"], u1["登记件数"]) == (1, "锦江区住建局", 2)
    assert (u1["及时受理件数"], u1["应受理件数"], u1["及时受理率"]) == (1, 2, 0.5)
    assert (u1["按期办结件数"], u1["应办结件数"], u1["按期办结率"]) == (1, 1, 1.0)
    assert rows["u3"]["信访部门满意率"] == "—"
    assert rows["u4"]["排名"] == "—"
    total = rows["合计"]
    assert (total["登记件数"], total["建议意见"], total["申诉求决"], total["检举控告"]) == (
        6,
        2,
        3,
        1,
    )
    assert total["按期办结率"] == pytest.approx(1 / 3)
    assert (total["参评件数"], total["应参评件数"], total["参评率"]) == (3, 4, 0.75)
    assert total["超期件数"] == 3
    towns = list(book["乡镇统计"].iter_rows(values_only=True))
    assert towns[0] == ("乡镇代码", "乡镇（街道）", "登记件数")
    assert towns[1:] == [(T1, "盐市口街道", 2), (T2, "春熙路街道", 2), (T3, "太升路街道", 2)]

    raw = to_csv(report)
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM, so spreadsheet programs read UTF-8
    parsed = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert parsed[0] == list(header)
    assert len(parsed) == len(table)
    csv_rows = {r[1] or r[2]: dict(zip(parsed[0], r, strict=True)) for r in parsed[1:]}
    assert csv_rows["u1"]["及时受理率"] == "50.0%"
    assert csv_rows["合计"]["按期办结率"] == "33.3%"
    assert csv_rows["u3"]["信访部门满意率"] == "—"
    assert csv_rows["u4"]["排名"] == "—"
    for key, row in rows.items():  # every figure in the CSV equals the workbook's
        for column, value in row.items():
            if column.endswith("率") and value != "—":
                assert csv_rows[key][column] == f"{value * 100:.1f}%", (key, column)
            elif isinstance(value, int):
                assert csv_rows[key][column] == str(value), (key, column)
