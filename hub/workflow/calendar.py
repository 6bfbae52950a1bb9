"""Deadline arithmetic on the Chinese working calendar (statutory holidays and make-up days).

Periods follow Chinese legal practice (期间开始的日不计算在内): the start day is not counted,
so 15 calendar days from 1 March end on 16 March, and 3 working days from a Friday end on the
next Wednesday. A calendar-day period whose last day is a weekend or a holiday runs to the next
working day. Working days come from ``chinese_calendar``, which makes weekends worked in lieu
(调休上班) working days and weekday holidays rest days.

The package knows only the years the State Council has published. A year it does not cover is
not an error: weekends alone are used for it, the result is marked ``estimated``, one warning
is logged per such year, and :func:`uncovered_years_seen` lets the console raise an alert.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from dataclasses import dataclass
from enum import StrEnum

from chinese_calendar import constants, is_workday

log = logging.getLogger(__name__)

_ONE_DAY = dt.timedelta(days=1)
_SATURDAY = 5


class DayKind(StrEnum):
    CALENDAR = "calendar"
    WORKING = "working"

    @property
    def label_zh(self) -> str:
        return "日" if self is DayKind.CALENDAR else "个工作日"


@dataclass(frozen=True, slots=True)
class Due:
    date: dt.date
    estimated: bool
    """True: the count needed holidays of a year the calendar does not cover (weekends only
    were used there). A calendar-day count that is not rolled needs none and is exact."""


_uncovered_lock = threading.Lock()
_uncovered: set[int] = set()


@functools.cache
def covered_years() -> range:
    """The years whose holidays and make-up days ``chinese_calendar`` knows.

    Read from the package's data table, the same bounds its own functions check.
    """
    years = [day.year for day in constants.holidays]
    return range(min(years), max(years) + 1)


@functools.lru_cache(maxsize=4096)
def _listed_working_day(day: dt.date) -> bool:
    """``chinese_calendar``'s answer for a day of a covered year."""
    return bool(is_workday(day))


def is_working_day(day: dt.date) -> tuple[bool, bool]:
    """``(is a working day, the calendar covers that year)``; uncovered years: Mon-Fri work."""
    if day.year in covered_years():
        return _listed_working_day(day), True
    _note_uncovered(day.year)
    return day.weekday() < _SATURDAY, False


def uncovered_years_seen() -> frozenset[int]:
    """Years that forced an estimate since the process started."""
    with _uncovered_lock:
        return frozenset(_uncovered)


def _note_uncovered(year: int) -> None:
    with _uncovered_lock:
        if year in _uncovered:
            return
        _uncovered.add(year)
    covered = covered_years()
    log.warning(
        "holiday calendar has no data for %d (covers %d-%d): counting weekends only; "
        "update the chinesecalendar package",
        year,
        covered.start,
        covered.stop - 1,
    )


def add_days(start: dt.date, days: int, kind: DayKind, *, roll_to_working_day: bool = True) -> Due:
    """The due date ``days`` calendar or working days after ``start`` (start not counted).

    With ``roll_to_working_day`` a due date on a rest day moves to the next working day
    (for working days that only matters when ``days`` is 0).
    """
    if days < 0:
        raise ValueError(f"days must not be negative (got {days})")
    estimated = False
    day = start
    if kind is DayKind.CALENDAR:
        day = start + dt.timedelta(days=days)
    else:
        left = days
        while left:
            day += _ONE_DAY
            working, covered = is_working_day(day)
            estimated |= not covered
            if working:
                left -= 1
    if roll_to_working_day:
        while True:
            working, covered = is_working_day(day)
            estimated |= not covered
            if working:
                break
            day += _ONE_DAY
    return Due(day, estimated)


def remaining(today: dt.date, due: dt.date, kind: DayKind) -> int:
    """Days left from ``today`` to ``due``: 0 on the due date, negative (days late) after it.

    Working days count the working days after ``today`` up to and including ``due``; when
    overdue, the working days after ``due`` up to ``today``, at least 1 (late on a weekend
    right after the due date is still late).
    """
    if kind is DayKind.CALENDAR:
        return (due - today).days
    if today > due:
        return -max(1, _working_days_after(due, today))
    return _working_days_after(today, due)


def _working_days_after(first: dt.date, last: dt.date) -> int:
    """Working days in ``(first, last]``."""
    span = (last - first).days
    return sum(is_working_day(first + dt.timedelta(days=n))[0] for n in range(1, span + 1))
