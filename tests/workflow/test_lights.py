"""Traffic lights at their boundaries, in calendar and in working days."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.workflow.calendar import DayKind
from hub.workflow.lights import Light, light, worst

D = dt.date.fromisoformat
CAL, WORK = DayKind.CALENDAR, DayKind.WORKING
DUE = D("2026-03-20")  # a Friday


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        ("2026-03-01", Light.GREEN),
        ("2026-03-16", Light.GREEN),  # 4 days left: yellow_days + 1
        ("2026-03-17", Light.YELLOW),  # exactly yellow_days left
        ("2026-03-19", Light.YELLOW),
        ("2026-03-20", Light.YELLOW),  # the due day is still in time
        ("2026-03-21", Light.RED),  # the day after
        ("2026-05-01", Light.RED),
    ],
)
def test_calendar_boundaries(today: str, expected: Light) -> None:
    assert light(D(today), DUE, CAL, yellow_days=3) is expected


def test_working_days_count_across_a_weekend() -> None:
    due = D("2026-03-11")  # Wednesday
    # Friday 03-06: 5 calendar days left but only 3 working days (Mon, Tue, Wed)
    assert light(D("2026-03-06"), due, CAL, yellow_days=3) is Light.GREEN
    assert light(D("2026-03-06"), due, WORK, yellow_days=3) is Light.YELLOW
    assert light(D("2026-03-05"), due, WORK, yellow_days=3) is Light.GREEN  # 4 working days
    assert light(D("2026-03-12"), due, WORK, yellow_days=3) is Light.RED


def test_working_days_count_across_the_spring_festival() -> None:
    due = D("2026-02-24")
    # 12 calendar days before, but only Fri 13, Sat 14 (make-up) and Tue 24 are working days
    assert light(D("2026-02-12"), due, WORK, yellow_days=3) is Light.YELLOW
    assert light(D("2026-02-11"), due, WORK, yellow_days=3) is Light.GREEN


def test_zero_yellow_days_turn_yellow_on_the_due_day_only() -> None:
    assert light(D("2026-03-19"), DUE, CAL, yellow_days=0) is Light.GREEN
    assert light(DUE, DUE, CAL, yellow_days=0) is Light.YELLOW


def test_a_case_shows_its_worst_light() -> None:
    assert worst([]) is None
    assert worst([Light.GREEN, Light.GREEN]) is Light.GREEN
    assert worst([Light.GREEN, Light.YELLOW]) is Light.YELLOW
    assert worst(iter([Light.YELLOW, Light.RED, Light.GREEN])) is Light.RED


def test_labels() -> None:
    assert [x.label_zh for x in Light] == ["正常", "临期", "超期"]
