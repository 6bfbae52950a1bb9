"""The copies of a case's township and unit on its deadlines, ratings and transitions
(migration 0010), which the statistics count by: filled by whoever writes a row, moved with
the case when it is routed or routed again, backfilled on an existing hub; and the period cut
on timestamps of any UTC offset."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from contracts.access import Role
from hub.config import REPLY_ELEMENTS
from hub.pii import PiiVault
from hub.store.migrations import SCOPED_TABLES, migrations
from hub.workflow.engine import CHINA, Actor, Rules, Step, apply_step
from hub.workflow.policy import load_policies
from hub.workflow.query import Rating, rate
from hub.workflow.scanner import scan
from hub.workflow.seed import generate, insert_cases
from hub.workflow.stats import GROUP_BYS, Figures, Rate, Stats, stats
from runtime.sqlite import open_database, transaction
from tests.workflow.test_stats import APRIL, TODAY, seed

D = dt.date.fromisoformat
TOWNSHIP = "510104021"
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # registered the day before (China 03-01)
OFFICE = Actor("office", Role.PETITION_OFFICE, "510104")
HANDLER = Actor("handler", Role.UNIT, "510104", "u1")
MARCH_TO_20 = (D("2026-03-01"), D("2026-03-20"))
LATER = D("2026-04-10")


def by_key(result: Stats) -> dict[str | None, Figures]:
    return {g.key: g for g in result.groups}


def scope_copies(db: Database) -> list[tuple[str, str, str | None]]:
    """Every (table, case, unit) whose copy differs from its case's township and unit."""
    wrong = []
    for table in SCOPED_TABLES:
        wrong += db.execute(
            f"SELECT '{table}', t.case_no, t.unit_id FROM {table} t "
            "JOIN cases c ON c.case_no = t.case_no "
            "WHERE t.township IS NOT c.township OR t.unit_id IS NOT c.unit_id"
        ).fetchall()
    return wrong


# -- the engine writes the copies, and routing moves the figures ------------------------------


@pytest.fixture
def rules() -> Rules:
    return Rules(load_policies(), REPLY_ELEMENTS)


@pytest.fixture
def hub_db(tmp_path: Path, rules: Rules) -> Iterator[Database]:
    """Two cases registered on 03-01 and taken into the workflow by the scan (their 'route'
    deadlines open, due 03-16); units u1 and u2 of 锦江区."""
    db = open_database(tmp_path / "hub.db", migrations)
    insert_cases(
        db, generate(PiiVault(b"k" * 32), [TOWNSHIP], 2, start=T0 - dt.timedelta(days=1), days=1)
    )
    for unit, zh in (("u1", "锦江区住建局"), ("u2", "锦江区人社局")):
        db.execute(
            "INSERT INTO units (id, name_zh, name_en, jurisdiction, created_at) "
            "VALUES (?, ?, ?, '510104', ?)",
            [unit, zh, unit, T0.isoformat()],
        )
    scan(db, rules, T0)
    yield db
    db.close()


def take(
    db: Database, rules: Rules, case_no: str, actor: Actor, days: float, **step: object
) -> None:
    apply_step(db, rules, case_no, actor, Step.model_validate(step), T0 + dt.timedelta(days=days))


def test_routing_a_case_after_its_deadlines_opened_moves_its_figures_to_the_unit(
    hub_db: Database, rules: Rules
) -> None:
    a, b = (r[0] for r in hub_db.execute("SELECT case_no FROM cases ORDER BY case_no"))
    route = {"action": "route", "unit_id": "u1", "assignee": "handler"}
    # A: routed, accepted in time, handled, replied and rated, all through the engine
    take(hub_db, rules, a, OFFICE, 2, **route)
    take(hub_db, rules, a, HANDLER, 3, action="accept")
    take(hub_db, rules, a, HANDLER, 3, action="start")
    elements = {e: "有" for e in REPLY_ELEMENTS}
    take(hub_db, rules, a, HANDLER, 10, action="reply", elements=elements)
    rate(hub_db, rules, a, Rating.SATISFIED, Rating.DISSATISFIED, "", "test", T0 + dt.timedelta(12))
    assert scope_copies(hub_db) == []

    # B is still waiting on 03-21: its route deadline (due 03-16) is overdue, unrouted
    before = by_key(stats(hub_db, "5101", *MARCH_TO_20, group_by="unit", today=LATER))
    assert before[None].overdue == 1
    assert before["u1"].overdue == 0
    assert before["u1"].timely_acceptance == Rate(1, 1)  # A's accept deadline
    assert before["u1"].participation == Rate(1, 1)
    assert (before["u1"].office_satisfaction, before["u1"].unit_satisfaction) == (
        Rate(1, 1),
        Rate(0, 1),
    )

    # B is routed late, on 03-22: its overdue route deadline goes with it to u1
    take(hub_db, rules, b, OFFICE, 20, **route)
    assert scope_copies(hub_db) == []
    after = by_key(stats(hub_db, "5101", *MARCH_TO_20, group_by="unit", today=LATER))
    assert None not in after or after[None].overdue == 0
    assert after["u1"].overdue == 1
    assert stats(hub_db, "5101", *MARCH_TO_20, unit_id="u1", today=LATER).total.overdue == 1
    assert (
        stats(hub_db, "5101", *MARCH_TO_20, today=LATER).total
        == stats(hub_db, "5101", *MARCH_TO_20, group_by="unit", today=LATER).total
    )


def test_a_case_routed_again_to_another_unit_takes_all_its_figures_along(
    hub_db: Database, rules: Rules
) -> None:
    a, b = (r[0] for r in hub_db.execute("SELECT case_no FROM cases ORDER BY case_no"))
    route = {"action": "route", "unit_id": "u1", "assignee": "handler"}
    take(hub_db, rules, a, OFFICE, 2, **route)
    take(hub_db, rules, a, HANDLER, 3, action="accept")
    take(hub_db, rules, a, HANDLER, 3, action="start")
    take(hub_db, rules, a, HANDLER, 10, action="reply", elements={e: "有" for e in REPLY_ELEMENTS})
    rate(hub_db, rules, a, Rating.SATISFIED, Rating.SATISFIED, "", "test", T0 + dt.timedelta(12))
    take(hub_db, rules, b, OFFICE, 20, **route)
    march = (D("2026-03-01"), D("2026-03-31"))
    u1 = by_key(stats(hub_db, "5101", *march, group_by="unit", today=LATER))["u1"]
    assert u1.active and u1.registered == 2 and u1.timely_acceptance == Rate(1, 1)

    # whoever changes the unit (a later re-route, an admin's correction), the rows follow
    with transaction(hub_db):
        hub_db.execute("UPDATE cases SET unit_id = 'u2' WHERE unit_id = 'u1'")
    assert scope_copies(hub_db) == []
    moved = by_key(stats(hub_db, "5101", *march, group_by="unit", today=LATER))
    assert moved["u2"] == Figures("u2", "锦江区人社局", "u2", **_values(u1))
    assert moved["u1"] == Figures("u1", "锦江区住建局", "u1")
    assert not moved["u1"].active
    assert stats(hub_db, "5101", *march, unit_id="u1", today=LATER).total.registered == 0


def _values(f: Figures) -> dict[str, object]:
    return {
        name: getattr(f, name)
        for name in Figures.__dataclass_fields__
        if name not in ("key", "name_zh", "name_en")
    }


# -- the backfill of an existing hub ----------------------------------------------------------


def test_the_backfill_gives_the_same_statistics_as_rows_written_afterwards(
    tmp_path: Path,
) -> None:
    old = Database(tmp_path / "old.db")
    migrations.apply(old, stop_before="0010_stats_scope")
    assert "township" not in old["deadlines"].columns_dict
    seed(old)  # written by a hub from before the migration
    migrations.apply(old)
    for table in SCOPED_TABLES:
        assert (
            old.execute(f"SELECT count(*) FROM {table} WHERE township IS NULL").fetchone()[0] == 0
        )
    assert scope_copies(old) == []

    new = open_database(tmp_path / "new.db", migrations)
    seed(new)
    for jurisdiction in ("5101", "510104", "510105"):
        for group_by in (None, *GROUP_BYS):
            assert stats(old, jurisdiction, *APRIL, group_by=group_by, today=TODAY) == stats(
                new, jurisdiction, *APRIL, group_by=group_by, today=TODAY
            ), (jurisdiction, group_by)
    for unit in ("u1", "u2", "u3"):
        assert stats(old, "5101", *APRIL, unit_id=unit, today=TODAY) == stats(
            new, "5101", *APRIL, unit_id=unit, today=TODAY
        )
    t = stats(old, "5101", *APRIL, today=TODAY).total  # the hand count of test_stats
    assert (t.registered, t.timely_acceptance, t.on_time_completion) == (6, Rate(3, 6), Rate(1, 3))
    assert (t.office_satisfaction, t.participation, t.overdue) == (Rate(2, 3), Rate(3, 4), 3)


# -- timestamps of any UTC offset near the ends of the period ---------------------------------


def china_date(ts: str) -> dt.date:
    at = dt.datetime.fromisoformat(ts)
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(CHINA).date()


def near(rng: random.Random, day: dt.date) -> str:
    """A timestamp within two days of ``day``'s China midnight, written in a random offset."""
    at = dt.datetime(day.year, day.month, day.day, tzinfo=CHINA) + dt.timedelta(
        minutes=rng.randrange(-2 * 1440, 2 * 1440)
    )
    offset = rng.choice([-12, -10, -5, 0, 5.5, 8, 9, 14, None])
    if offset is None:
        return at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")
    return at.astimezone(dt.timezone(dt.timedelta(hours=offset))).isoformat(timespec="seconds")


def test_timestamps_near_the_ends_of_the_period_count_by_their_china_date(
    tmp_path: Path,
) -> None:
    rng = random.Random(5)
    db = open_database(tmp_path / "hub.db", migrations)
    start, end = APRIL
    edges = [start, end + dt.timedelta(days=1), start + dt.timedelta(days=1), end]
    expected = {"registered": 0, "rated": 0, "met": 0}
    with transaction(db):
        for n in range(400):
            case_no, registered = f"C{n}", near(rng, rng.choice(edges))
            db.execute(
                "INSERT INTO cases (case_no, node, township, registered_at, id_enc, id_hmac, "
                "state, unit_id) VALUES (?, 'box', ?, ?, x'00', ?, 'handling', 'u1')",
                [case_no, TOWNSHIP, registered, case_no],
            )
            expected["registered"] += start <= china_date(registered) <= end
            rated = near(rng, rng.choice(edges))
            db.execute(
                "INSERT INTO ratings (case_no, office, unit, rated_at) "
                "VALUES (?, 'satisfied', 'satisfied', ?)",
                [case_no, rated],
            )
            expected["rated"] += start <= china_date(rated) <= end
            due = rng.choice(edges) + dt.timedelta(days=rng.randrange(-1, 2))
            ended = near(rng, due + dt.timedelta(days=rng.choice([0, 1])))
            db.execute(
                "INSERT INTO deadlines (case_no, kind, started_on, due, day_kind, yellow_days, "
                "reminders, estimated, state, ended_at) "
                "VALUES (?, 'handle', '2026-01-01', ?, 'calendar', 3, '[]', 0, 'met', ?)",
                [case_no, due.isoformat(), ended],
            )
            day = china_date(ended)
            expected["met"] += start <= day <= end and day <= due and due >= start
    t = stats(db, "5101", start, end, today=LATER).total
    assert expected["registered"] > 50 and expected["rated"] > 50 and expected["met"] > 50
    assert t.registered == expected["registered"]
    assert t.office_satisfaction.total == expected["rated"]
    assert t.on_time_completion.met == expected["met"]
