"""Deadline arithmetic against the real holiday calendar of the ``chinesecalendar`` package.

2026 data used below (State Council notice, as shipped by the package): Spring Festival
holidays 2026-02-15 (Sun) to 02-23 (Mon), make-up working days Sat 02-14 and Sat 02-28;
National Day holidays 10-01 to 10-07, make-up working days Sun 09-20 and Sat 10-10.
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.workflow import calendar
from hub.workflow.calendar import (
    DayKind,
    Due,
    add_days,
    covered_years,
    is_working_day,
    remaining,
    uncovered_years_seen,
)

D = dt.date.fromisoformat
CAL, WORK = DayKind.CALENDAR, DayKind.WORKING


@pytest.fixture
def fresh_uncovered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the uncovered years seen so far, so this test sees its own warning."""
    monkeypatch.setattr(calendar, "_uncovered", set())


def test_the_package_data_this_file_relies_on() -> None:
    assert 2026 in covered_years()
    assert is_working_day(D("2026-02-14")) == (True, True)  # Saturday, make-up day
    assert is_working_day(D("2026-02-28")) == (True, True)
    assert is_working_day(D("2026-02-16")) == (False, True)  # Monday, Spring Festival
    assert is_working_day(D("2026-02-24")) == (True, True)
    assert is_working_day(D("2026-10-10")) == (True, True)  # Saturday, make-up day
    assert is_working_day(D("2026-10-05")) == (False, True)  # Monday, National Day


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        # Fri 13 (1), Sat 14 make-up (2), holidays 15-23, Tue 24 (3)
        ("2026-02-12", 3, "2026-02-24"),
        # ... Wed 25 (4), Thu 26, Fri 27, Sat 28 make-up (7), Mon 2, Tue 3, Wed 4 (10)
        ("2026-02-12", 10, "2026-03-04"),
        # Wed 30 (1), National Day 1-7, Thu 8 (2), Fri 9 (3), Sat 10 make-up (4)
        ("2026-09-29", 4, "2026-10-10"),
        ("2026-09-29", 1, "2026-09-30"),
    ],
)
def test_working_days_skip_holidays_and_count_make_up_days(start: str, days: int, due: str) -> None:
    assert add_days(D(start), days, WORK) == Due(D(due), estimated=False)


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        # 02-01 + 15 = Mon 02-16, Spring Festival: runs to the first working day after it
        ("2026-02-01", 15, "2026-02-24"),
        # 02-13 + 15 = Sat 02-28, a make-up working day: stays
        ("2026-02-13", 15, "2026-02-28"),
        # 09-16 + 15 = 10-01, National Day: runs to Thu 10-08
        ("2026-09-16", 15, "2026-10-08"),
        # a 60-day handling period ending in the National Day holiday
        ("2026-08-02", 60, "2026-10-08"),
        # an ordinary Saturday rolls to Monday
        ("2026-03-06", 1, "2026-03-09"),
        ("2026-03-02", 15, "2026-03-17"),
    ],
)
def test_calendar_days_roll_off_rest_days(start: str, days: int, due: str) -> None:
    assert add_days(D(start), days, CAL) == Due(D(due), estimated=False)


def test_calendar_days_without_rolling_end_on_the_rest_day() -> None:
    assert add_days(D("2026-02-01"), 15, CAL, roll_to_working_day=False).date == D("2026-02-16")


def test_zero_days_is_the_start_day_rolled() -> None:
    assert add_days(D("2026-02-16"), 0, CAL).date == D("2026-02-24")
    assert add_days(D("2026-02-16"), 0, WORK).date == D("2026-02-24")
    assert add_days(D("2026-02-16"), 0, WORK, roll_to_working_day=False).date == D("2026-02-16")
    assert add_days(D("2026-03-04"), 0, WORK).date == D("2026-03-04")


def test_negative_days_are_refused() -> None:
    with pytest.raises(ValueError, match="-1"):
        add_days(D("2026-03-04"), -1, CAL)


@pytest.mark.usefixtures("fresh_uncovered")
def test_an_uncovered_year_is_estimated_from_weekends(caplog: pytest.LogCaptureFixture) -> None:
    assert 2099 not in covered_years()
    with caplog.at_level(logging.WARNING, logger="hub.workflow.calendar"):
        # Fri 2099-03-06: Mon 9 (1) ... Fri 13 (5)
        assert add_days(D("2099-03-06"), 5, WORK) == Due(D("2099-03-13"), estimated=True)
        # Thu 2099-01-01 would be New Year's Day; without data only weekends rest
        assert add_days(D("2099-01-01"), 0, WORK) == Due(D("2099-01-01"), estimated=True)
        # Sat 03-07 rolls to Mon 03-09
        assert add_days(D("2099-03-06"), 1, CAL) == Due(D("2099-03-09"), estimated=True)
        assert is_working_day(D("2099-03-07")) == (False, False)
    assert 2099 in uncovered_years_seen()
    warnings = [r for r in caplog.records if "2099" in r.getMessage()]
    assert len(warnings) == 1  # one warning per year, however often it is counted
    assert warnings[0].levelno == logging.WARNING


@pytest.mark.usefixtures("fresh_uncovered")
def test_a_count_into_the_first_uncovered_year(caplog: pytest.LogCaptureFixture) -> None:
    last = covered_years()[-1]
    start = dt.date(last, 12, 20)
    with caplog.at_level(logging.WARNING, logger="hub.workflow.calendar"):
        due = add_days(start, 30, WORK)
    assert due.estimated
    assert due.date.year == last + 1
    assert due.date.weekday() < 5
    assert uncovered_years_seen() == {last + 1}
    assert str(last + 1) in caplog.text
    # within the covered year the estimate is not needed
    assert not add_days(start, 3, WORK).estimated


@pytest.mark.usefixtures("fresh_uncovered")
def test_a_calendar_count_needs_no_holidays_unless_it_rolls() -> None:
    exact = add_days(D("2099-03-06"), 1, CAL, roll_to_working_day=False)
    assert exact == Due(D("2099-03-07"), estimated=False)
    assert uncovered_years_seen() == frozenset()


def test_remaining_in_calendar_days() -> None:
    due = D("2026-03-20")
    assert remaining(D("2026-03-17"), due, CAL) == 3
    assert remaining(due, due, CAL) == 0
    assert remaining(D("2026-03-21"), due, CAL) == -1
    assert remaining(D("2026-03-25"), due, CAL) == -5


def test_remaining_in_working_days_over_the_spring_festival() -> None:
    due = D("2026-02-24")
    assert remaining(D("2026-02-12"), due, WORK) == 3  # Fri 13, Sat 14 (make-up), Tue 24
    assert remaining(D("2026-02-14"), due, WORK) == 1
    assert remaining(D("2026-02-16"), due, WORK) == 1
    assert remaining(due, due, WORK) == 0
    assert remaining(D("2026-02-25"), due, WORK) == -1


def test_overdue_in_working_days_is_negative_even_on_a_weekend() -> None:
    due = D("2026-03-06")  # Friday
    assert remaining(D("2026-03-07"), due, WORK) == -1  # Saturday: late, though no workday passed
    assert remaining(D("2026-03-09"), due, WORK) == -1  # Monday
    assert remaining(D("2026-03-10"), due, WORK) == -2


@given(
    start=st.dates(min_value=dt.date(2010, 1, 1), max_value=dt.date(2025, 10, 1)),
    days=st.integers(min_value=1, max_value=60),
)
def test_remaining_counts_back_what_add_days_counted(start: dt.date, days: int) -> None:
    due = add_days(start, days, WORK).date
    assert is_working_day(due)[0]
    assert remaining(start, due, WORK) == days


@given(
    start=st.dates(min_value=dt.date(2010, 1, 1), max_value=dt.date(2025, 10, 1)),
    days=st.integers(min_value=0, max_value=90),
)
def test_a_calendar_due_date_is_the_first_working_day_from_start_plus_days(
    start: dt.date, days: int
) -> None:
    due = add_days(start, days, CAL).date
    plain = start + dt.timedelta(days=days)
    assert due >= plain
    assert is_working_day(due)[0]
    assert not any(is_working_day(plain + dt.timedelta(n))[0] for n in range((due - plain).days))
