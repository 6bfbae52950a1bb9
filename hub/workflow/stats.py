"""Statistics of case handling over a period: the rates officials rank units on (月通报), and
the counts behind the dashboard. Every definition is written out in ``docs/statistics.md``.

All figures are counts that add up across groups, so each query runs once, grouped by the
requested key (unit, township, county or city), and the total is the sum of the groups.
Deadlines, ratings and transitions carry their case's ``township`` and ``unit_id`` (kept by
the triggers of migration 0010), so every query cuts the scope and groups on the table it
counts and never reads ``cases`` row by row: each is a range scan of one covering index
(cases by (township, registered_at), deadlines by (state, ended_at) and (state, due),
replies by (to_state, ts), ratings by rated_at). Timestamps are narrowed by plain string
ranges first and then cut exactly to China dates with SQLite's ``date(ts, '+8 hours')``.

Timestamps in the database are ISO 8601 with a UTC offset (a missing offset is read as UTC);
deadline due dates are China dates. The period ``[start, end]`` is in China dates, both ends
included.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlite_utils import Database

from contracts.cases import Category
from contracts.divisions import code_range
from contracts.places import place_name
from hub.store.cases import townships_with_cases
from hub.workflow.engine import china_today

GroupBy = Literal["unit", "township", "county", "city"]
GROUP_BYS: tuple[GroupBy, ...] = ("unit", "township", "county", "city")
SATISFIED = ("satisfied", "basically_satisfied")
"""Rating values that count as satisfied (满意, 基本满意); the other one is 'dissatisfied'."""
ACCEPTANCE_KINDS = ("accept", "route")
HANDLE_KIND = "handle"
NO_UNIT_ZH, NO_UNIT_EN = "未交办", "not routed"

_KEY_SQL: dict[GroupBy | None, str] = {
    "unit": "unit_id",
    "township": "township",
    "county": "substr(township, 1, 6)",
    "city": "substr(township, 1, 4)",
    None: "''",
}
"""The group key over the scope columns every counted table has (``township``, ``unit_id``)."""
_ONE_DAY = dt.timedelta(days=1)
_MONTH = re.compile(r"\d{4}-\d{2}")


class StatsError(ValueError):
    """A statistics request that cannot be answered as asked (bad period or grouping)."""


@dataclass(frozen=True, slots=True)
class Rate:
    """``met`` of ``total``; no value (shown "—") when ``total`` is zero."""

    met: int = 0
    total: int = 0

    @property
    def value(self) -> float | None:
        return self.met / self.total if self.total else None

    def text(self) -> str:
        """ "87.5%", or "—" without a denominator."""
        value = self.value
        return "—" if value is None else f"{value * 100:.1f}%"

    def __add__(self, other: Rate) -> Rate:
        return Rate(self.met + other.met, self.total + other.total)

    def as_dict(self) -> dict[str, Any]:
        value = self.value
        return {
            "met": self.met,
            "total": self.total,
            "rate": None if value is None else round(value, 4),
        }


@dataclass(frozen=True, slots=True)
class Figures:
    """One group's (or the total's) statistics over the period."""

    key: str | None
    """Unit id, township/county/city code; ``None`` for the total or for cases with no unit."""
    name_zh: str
    name_en: str
    registered: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    timely_acceptance: Rate = Rate()
    """及时受理率"""
    on_time_completion: Rate = Rate()
    """按期办结率"""
    office_satisfaction: Rate = Rate()
    """满意率 of the petition office (信访部门)"""
    unit_satisfaction: Rate = Rate()
    """满意率 of the responsible unit (责任单位)"""
    participation: Rate = Rate()
    """参评率"""
    overdue: int = 0
    """cases with a deadline open and past due on the as-of day"""

    @property
    def active(self) -> bool:
        """Whether anything happened in the period (a unit without activity ranks last)."""
        return bool(
            self.registered
            or self.overdue
            or self.timely_acceptance.total
            or self.on_time_completion.total
            or self.office_satisfaction.total
            or self.participation.total
        )

    def __add__(self, other: Figures) -> Figures:
        categories = {
            k: self.by_category.get(k, 0) + other.by_category.get(k, 0)
            for k in {*self.by_category, *other.by_category}
        }
        return replace(
            self,
            registered=self.registered + other.registered,
            by_category=categories,
            timely_acceptance=self.timely_acceptance + other.timely_acceptance,
            on_time_completion=self.on_time_completion + other.on_time_completion,
            office_satisfaction=self.office_satisfaction + other.office_satisfaction,
            unit_satisfaction=self.unit_satisfaction + other.unit_satisfaction,
            participation=self.participation + other.participation,
            overdue=self.overdue + other.overdue,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "registered": self.registered,
            "by_category": {c.value: self.by_category.get(c.value, 0) for c in Category},
            "timely_acceptance": self.timely_acceptance.as_dict(),
            "on_time_completion": self.on_time_completion.as_dict(),
            "office_satisfaction": self.office_satisfaction.as_dict(),
            "unit_satisfaction": self.unit_satisfaction.as_dict(),
            "participation": self.participation.as_dict(),
            "overdue": self.overdue,
        }


@dataclass(frozen=True, slots=True)
class TownshipCount:
    code: str
    name_zh: str
    name_en: str
    registered: int


@dataclass(frozen=True, slots=True)
class Stats:
    jurisdiction: str
    start: dt.date
    end: dt.date
    today: dt.date
    as_of: dt.date
    """The day the overdue count is taken on: ``end``, or today when the period runs on."""
    unit_id: str | None
    group_by: GroupBy | None
    total: Figures
    groups: tuple[Figures, ...]
    by_township: tuple[TownshipCount, ...]
    """Cases registered in the period per township, most first."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "jurisdiction": self.jurisdiction,
            "jurisdiction_name_zh": place_name(self.jurisdiction),
            "jurisdiction_name_en": place_name(self.jurisdiction, "en"),
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "today": self.today.isoformat(),
            "as_of": self.as_of.isoformat(),
            "unit_id": self.unit_id,
            "group_by": self.group_by,
            "total": self.total.as_dict(),
            "groups": [g.as_dict() for g in self.groups],
            "by_township": [
                {
                    "code": t.code,
                    "name_zh": t.name_zh,
                    "name_en": t.name_en,
                    "registered": t.registered,
                }
                for t in self.by_township
            ],
        }


@dataclass(frozen=True, slots=True)
class Ranked:
    rank: int | None
    """1 for the best; equal figures share a rank; ``None`` for units without activity."""
    figures: Figures


# -- the period and the scope ---------------------------------------------------------------


def month_period(month: str) -> tuple[dt.date, dt.date]:
    """The first and last day of ``YYYY-MM``; ``StatsError`` when it is not one."""
    try:
        if not _MONTH.fullmatch(month):
            raise ValueError(month)
        first = dt.date(int(month[:4]), int(month[5:]), 1)
    except ValueError:
        raise StatsError(f"month must be YYYY-MM, got {month!r}") from None
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first, following - _ONE_DAY


def _ts_bounds(start: dt.date, end: dt.date) -> dict[str, str]:
    """String bounds of the timestamps (whatever their UTC offset, at most ±14 h) on a China
    date in ``[start, end]``: every such timestamp lies in ``[lo_ts, hi_ts)`` (the index
    range), and every timestamp in ``[in_lo, in_hi)`` is such a one (its own date is at most
    a day off its China date), so only those near either end need their China date worked
    out."""
    return {
        "lo_ts": (start - _ONE_DAY).isoformat(),
        "hi_ts": (end + 2 * _ONE_DAY).isoformat(),
        "in_lo": (start + _ONE_DAY).isoformat(),
        "in_hi": end.isoformat(),
    }


def _in_period(column: str) -> str:
    """``column`` (a timestamp) falls on a China date of the period: the index range, then
    the exact date for the timestamps near either end only (SQLite stops at the first true
    branch of an ``OR``)."""
    return (
        f"{column} >= :lo_ts AND {column} < :hi_ts AND ({column} >= :in_lo AND {column} < :in_hi "
        f"OR date({column}, '+8 hours') BETWEEN :start AND :end)"
    )


@dataclass(frozen=True, slots=True)
class _Query:
    """What every statement shares: the group key and the scope, both over the ``township``
    and ``unit_id`` columns that cases and every table counted have, and the period."""

    key: str
    scope: str
    """The jurisdiction's township range, and the unit when asked for."""
    unit_scope: str
    """The unit part of ``scope`` alone (`` AND unit_id = :unit``, or nothing)."""
    args: dict[str, Any]


def _acceptance_kind(alias: str = "d") -> str:
    """The deadline that measures a case's acceptance: its 'accept' deadline, or its 'route'
    deadline when it has no 'accept' one (tracks without an acceptance step)."""
    return (
        f"({alias}.kind = 'accept' OR ({alias}.kind = 'route' AND NOT EXISTS ("
        f"SELECT 1 FROM deadlines a WHERE a.case_no = {alias}.case_no AND a.kind = 'accept')))"
    )


def _metric(alias: str = "d") -> str:
    return f"CASE WHEN {alias}.kind = 'handle' THEN 'handle' ELSE 'accept' END"


# -- the statistics -------------------------------------------------------------------------


def stats(
    db: Database,
    jurisdiction: str,
    start: dt.date,
    end: dt.date,
    *,
    unit_id: str | None = None,
    group_by: GroupBy | None = None,
    today: dt.date | None = None,
) -> Stats:
    """Statistics of the cases in ``jurisdiction`` (a division-code prefix; ``unit_id``: only
    that unit's cases) over the China dates ``[start, end]``, in total and per ``group_by``.

    ``today`` (a China date; default: now) bounds what can be known: a deadline counts as
    missed only once its due date has passed.
    """
    if end < start:
        raise StatsError(f"the period ends ({end}) before it starts ({start})")
    if group_by not in _KEY_SQL:
        raise StatsError(f"group_by must be one of {list(GROUP_BYS)}, got {group_by!r}")
    if today is None:
        today = china_today(dt.datetime.now(dt.UTC))
    as_of = min(end, today)
    args: dict[str, Any] = {
        "jur": jurisdiction,
        "jur_hi": code_range(jurisdiction)[1],
        "start": start.isoformat(),
        "end": end.isoformat(),
        **_ts_bounds(start, end),
        "last_due": min(end, today - _ONE_DAY).isoformat(),
        "as_of": as_of.isoformat(),
    }
    unit_scope = ""
    if unit_id is not None:
        unit_scope = " AND unit_id = :unit"
        args["unit"] = unit_id
    scope = "township >= :jur AND township < :jur_hi" + unit_scope
    q = _Query(_KEY_SQL[group_by], scope, unit_scope, args)

    figures: dict[str | None, dict[str, Any]] = {}

    def slot(key: str | None) -> dict[str, Any]:
        return figures.setdefault(key, {"by_category": {}})

    townships: dict[str, int] = {}
    for key, township, category, n in _registrations(db, q, townships_with_cases(db, jurisdiction)):
        s = slot(key)
        s["registered"] = s.get("registered", 0) + n
        s["by_category"][category] = s["by_category"].get(category, 0) + n
        townships[township] = townships.get(township, 0) + n
    for key, metric, met, missed in _deadline_outcomes(db, q):
        name = "timely_acceptance" if metric == "accept" else "on_time_completion"
        slot(key)[name] = Rate(met, met + missed)
    for key, n in _overdue(db, q):
        slot(key)["overdue"] = n
    for key, rated, office, unit in _ratings(db, q):
        s = slot(key)
        s["office_satisfaction"], s["unit_satisfaction"] = Rate(office, rated), Rate(unit, rated)
    for key, replied, rated in _participation(db, q):
        slot(key)["participation"] = Rate(rated, replied)

    names = _names(db, group_by, jurisdiction, figures)
    groups = {
        key: Figures(key, *names.get(key, (str(key), str(key))), **values)
        for key, values in figures.items()
    }
    if group_by == "unit" and unit_id is None:
        for key, (zh, en) in names.items():
            if key is not None:
                groups.setdefault(key, Figures(key, zh, en))
    total = Figures(None, place_name(jurisdiction), place_name(jurisdiction, "en"))
    for g in groups.values():
        total = total + g
    by_township = tuple(
        TownshipCount(code, place_name(code), place_name(code, "en"), n)
        for code, n in sorted(townships.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return Stats(
        jurisdiction=jurisdiction,
        start=start,
        end=end,
        today=today,
        as_of=as_of,
        unit_id=unit_id,
        group_by=group_by,
        total=total,
        groups=tuple(sorted(groups.values(), key=lambda g: (g.key is None, g.key or "")))
        if group_by is not None
        else (),
        by_township=by_township,
    )


def _registrations(db: Database, q: _Query, townships: list[str]) -> list[tuple[Any, ...]]:
    """(key, township, category, cases registered in the period): one range of
    ``cases_registered`` per township of the jurisdiction (``townships``, which stand for
    the township range of the scope)."""
    if not townships:
        return []
    marks = ",".join(f":t{i}" for i in range(len(townships)))
    args = q.args | {f"t{i}": t for i, t in enumerate(townships)}
    return db.execute(
        f"SELECT {q.key}, township, category, count(*) FROM cases "
        f"WHERE township IN ({marks}) AND {_in_period('registered_at')}{q.unit_scope} "
        "GROUP BY 1, 2, 3",
        args,
    ).fetchall()


def _deadline_outcomes(db: Database, q: _Query) -> list[tuple[Any, ...]]:
    """(key, 'accept' | 'handle', met in the period, missed in the period).

    Met: closed in time with its close in the period (a 'stopped' acceptance deadline closed
    in time is a timely decision too: 不予受理 or 并案). Missed: fell due in the period, is
    past due, and was not closed in time (still open, missed, or stopped after its due date).
    """
    kinds = f"(d.kind = '{HANDLE_KIND}' OR {_acceptance_kind()})"
    ended = "date(d.ended_at, '+8 hours')"
    # closed in time: on a day before the due date by its own date (then its China date is
    # at most the due date), else by its China date
    in_time = f"(d.ended_at < d.due OR {ended} <= d.due)"
    met = db.execute(
        f"SELECT {q.key}, {_metric()}, count(*) FROM deadlines d "
        f"WHERE d.state IN ('met', 'stopped') AND d.due >= :start AND {q.scope} "
        f"AND {_in_period('d.ended_at')} AND {in_time} "
        f"AND (d.state = 'met' OR d.kind IN {ACCEPTANCE_KINDS}) AND {kinds} GROUP BY 1, 2",
        q.args,
    ).fetchall()
    missed = db.execute(
        f"SELECT {q.key}, {_metric()}, count(*) FROM deadlines d "
        "WHERE d.state IN ('open', 'missed', 'stopped') AND d.due BETWEEN :start AND :last_due "
        f"AND (d.state <> 'stopped' OR {ended} > d.due) AND {kinds} AND {q.scope} GROUP BY 1, 2",
        q.args,
    ).fetchall()
    outcomes: dict[tuple[Any, str], list[int]] = {}
    for key, metric, n in met:
        outcomes.setdefault((key, metric), [0, 0])[0] += n
    for key, metric, n in missed:
        outcomes.setdefault((key, metric), [0, 0])[1] += n
    return [(key, metric, m, x) for (key, metric), (m, x) in outcomes.items()]


def _overdue(db: Database, q: _Query) -> list[tuple[Any, ...]]:
    """(key, cases with a deadline open at the end of the as-of day and due before it): still
    open, or closed (missed or stopped) only after that day."""
    return db.execute(
        f"SELECT key, count(DISTINCT case_no) FROM ("
        f"  SELECT {q.key} AS key, case_no FROM deadlines"
        f"  WHERE state = 'open' AND due < :as_of AND {q.scope}"
        "  UNION ALL"
        f"  SELECT {q.key}, case_no FROM deadlines"
        "  WHERE state IN ('missed', 'stopped') AND ended_at >= :as_of AND +due < :as_of"
        f"  AND date(ended_at, '+8 hours') > :as_of AND {q.scope}"
        ") GROUP BY 1",
        q.args,
    ).fetchall()


def _ratings(db: Database, q: _Query) -> list[tuple[Any, ...]]:
    """(key, ratings in the period, office satisfied, unit satisfied)."""
    return db.execute(
        f"SELECT {q.key}, count(*), sum(office IN {SATISFIED}), sum(unit IN {SATISFIED}) "
        f"FROM ratings WHERE {_in_period('rated_at')} AND {q.scope} GROUP BY 1",
        q.args,
    ).fetchall()


def _participation(db: Database, q: _Query) -> list[tuple[Any, ...]]:
    """(key, cases replied in the period, of those the ones rated)."""
    return db.execute(
        f"SELECT key, count(*), count(r.case_no) FROM ("
        f"  SELECT DISTINCT {q.key} AS key, case_no FROM transitions "
        f"  WHERE to_state = 'replied' AND {_in_period('ts')} AND {q.scope}"
        ") AS t LEFT JOIN ratings r ON r.case_no = t.case_no GROUP BY 1",
        q.args,
    ).fetchall()


def _names(
    db: Database, group_by: GroupBy | None, jurisdiction: str, figures: dict[str | None, Any]
) -> dict[str | None, tuple[str, str]]:
    """Names of the groups; for units, every unit of the jurisdiction (ranked even when idle)."""
    if group_by == "unit":
        names: dict[str | None, tuple[str, str]] = {None: (NO_UNIT_ZH, NO_UNIT_EN)}
        keys = [k for k in figures if k is not None]
        marks = ",".join("?" * len(keys))
        rows = db.execute(
            "SELECT id, name_zh, coalesce(name_en, ''), jurisdiction FROM units "
            f"WHERE (jurisdiction >= ? AND jurisdiction < ?) OR id IN ({marks})",
            [*code_range(jurisdiction), *keys],
        ).fetchall()
        for unit, zh, en, _ in rows:
            names[unit] = (zh, en or zh)
        return names
    if group_by is None:
        return {}
    return {k: (place_name(k), place_name(k, "en")) for k in figures if k is not None}


# -- the ranking ----------------------------------------------------------------------------


def _sort_value(rate: Rate) -> float:
    """Higher is better; a rate without a denominator sorts after every real rate."""
    value = rate.value
    return -1.0 if value is None else value


def ranking_key(f: Figures) -> tuple[float, float, float]:
    """The composite the ranking orders by, best first: 按期办结率, then 及时受理率, then the
    responsible unit's 满意率."""
    return (
        -_sort_value(f.on_time_completion),
        -_sort_value(f.timely_acceptance),
        -_sort_value(f.unit_satisfaction),
    )


def ranking(result: Stats) -> list[Ranked]:
    """The units of a ``group_by='unit'`` result, best first, with competition ranks (equal
    figures share a rank, the next rank skips); units without activity last, unranked. Cases
    not yet routed to a unit are not a unit and are left out."""
    if result.group_by != "unit":
        raise StatsError("a ranking needs statistics grouped by unit")
    units = [g for g in result.groups if g.key is not None]
    active = sorted((g for g in units if g.active), key=lambda g: (ranking_key(g), g.key or ""))
    idle = sorted((g for g in units if not g.active), key=lambda g: g.key or "")
    ranked: list[Ranked] = []
    for i, g in enumerate(active):
        same = ranked and ranking_key(ranked[-1].figures) == ranking_key(g)
        ranked.append(Ranked(ranked[-1].rank if same else i + 1, g))
    return ranked + [Ranked(None, g) for g in idle]
