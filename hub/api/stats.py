"""``/api/v1/stats``: case-handling statistics over a period, the monthly ranking of units and
the monthly report (月通报) as XLSX and CSV, all cut to the caller's jurisdiction; and the
console's dashboard page ``/stats``. Definitions: ``docs/statistics.md``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from sqlite_utils import Database

from contracts.access import Role
from contracts.divisions import parse_division
from contracts.errors import ContractError
from hub.api.context import claims, client_of, ctx, error
from hub.console.pages import signed_in_page
from hub.workflow.engine import china_today
from hub.workflow.report import (
    RANKING_BASIS_EN,
    RANKING_BASIS_ZH,
    MonthlyReport,
    monthly_report,
    to_csv,
    to_xlsx,
)
from hub.workflow.stats import GROUP_BYS, GroupBy, StatsError, month_period, stats

MAX_DAYS = 366
"""The longest period one request may cover (a year)."""
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REFUSED_ROLES = frozenset({Role.BOX})


def _today() -> dt.date:
    return china_today(dt.datetime.now(dt.UTC))


def _date(request: web.Request, key: str, default: dt.date) -> dt.date | web.Response:
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        return error(400, f"{key} must be a date YYYY-MM-DD, got {raw!r}", field=key)


def _scope(request: web.Request) -> str | web.Response:
    """The caller's jurisdiction, narrowed by ``?division=`` to a part of it."""
    who = claims(request)
    if who.role in REFUSED_ROLES:
        return error(403, f"role {who.role.value!r} may not read statistics")
    raw = request.query.get("division")
    if raw is None:
        return who.jur
    try:
        code = parse_division(raw).code
    except ContractError as exc:
        return error(400, f"division: {exc}", field="division")
    if not who.covers(code):
        return error(403, f"division {code} is outside your jurisdiction {who.jur}")
    return code


async def get_stats(request: web.Request) -> web.Response:
    """``?from=&to=`` (China dates, default: this month so far), ``&group_by=unit|township|
    county|city``, ``&unit_id=``, ``&division=`` (a part of the caller's jurisdiction)."""
    today, q = _today(), request.query
    scope = _scope(request)
    if isinstance(scope, web.Response):
        return scope
    start = _date(request, "from", today.replace(day=1))
    if isinstance(start, web.Response):
        return start
    end = _date(request, "to", today)
    if isinstance(end, web.Response):
        return end
    if end < start:
        return error(400, f"'to' ({end}) is before 'from' ({start})", field="to")
    if (end - start).days >= MAX_DAYS:
        return error(400, f"the period may cover at most {MAX_DAYS} days", field="to")
    group_by = q.get("group_by") or None
    if group_by is not None and group_by not in GROUP_BYS:
        return error(400, f"group_by must be one of {list(GROUP_BYS)}, got {group_by!r}")
    unit_id = q.get("unit_id") or None
    if unit_id is not None and len(unit_id) > 64:
        return error(400, "unit_id is at most 64 characters", field="unit_id")
    who = claims(request)
    if who.role is Role.UNIT:
        if who.unit is None or unit_id not in (None, who.unit):
            return error(403, f"a unit account sees only its own unit's, {who.unit!r}")
        unit_id = who.unit
    grouping: GroupBy | None = group_by

    def read(db: Database) -> dict[str, Any]:
        return stats(
            db, scope, start, end, unit_id=unit_id, group_by=grouping, today=today
        ).as_dict()

    try:
        body = await ctx(request).store.read(read)
    except StatsError as exc:
        return error(400, str(exc))
    return web.json_response(body)


async def _report(request: web.Request) -> MonthlyReport | web.Response:
    scope = _scope(request)
    if isinstance(scope, web.Response):
        return scope
    today = _today()
    month = request.query.get("month") or f"{today:%Y-%m}"
    try:
        start, _ = month_period(month)
    except StatsError as exc:
        return error(400, str(exc), field="month")
    if start > today:
        return error(400, f"month {month} has not begun yet", field="month")
    return await ctx(request).store.read(lambda db: monthly_report(db, scope, month, today))


async def get_ranking(request: web.Request) -> web.Response:
    """``?month=YYYY-MM`` (default: this month): the units ranked, best first."""
    report = await _report(request)
    if isinstance(report, web.Response):
        return report
    s = report.stats
    return web.json_response(
        {
            "month": report.month,
            "from": s.start.isoformat(),
            "to": s.end.isoformat(),
            "as_of": s.as_of.isoformat(),
            "jurisdiction": s.jurisdiction,
            "basis_zh": RANKING_BASIS_ZH,
            "basis_en": RANKING_BASIS_EN,
            "ranking": [{"rank": r.rank, **r.figures.as_dict()} for r in report.ranking],
            "total": s.total.as_dict(),
        }
    )


def _download(report: MonthlyReport, body: bytes, kind: str, suffix: str) -> web.Response:
    name = f"xinfang-report-{report.stats.jurisdiction}-{report.month}.{suffix}"
    return web.Response(
        body=body,
        content_type=kind,
        charset="utf-8" if suffix == "csv" else None,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def get_report_xlsx(request: web.Request) -> web.Response:
    report = await _report(request)
    if isinstance(report, web.Response):
        return report
    await ctx(request).store.audit(
        claims(request).sub, "stats.report", client=client_of(request), month=report.month
    )
    return _download(report, to_xlsx(report), XLSX, "xlsx")


async def get_report_csv(request: web.Request) -> web.Response:
    report = await _report(request)
    if isinstance(report, web.Response):
        return report
    await ctx(request).store.audit(
        claims(request).sub, "stats.report", client=client_of(request), month=report.month
    )
    return _download(report, to_csv(report), "text/csv", "csv")


stats_page = signed_in_page("stats.html")


def add_routes(app: web.Application) -> None:
    """Register this module's routes."""
    app.router.add_get("/api/v1/stats", get_stats)
    app.router.add_get("/api/v1/stats/ranking", get_ranking)
    app.router.add_get("/api/v1/stats/report.xlsx", get_report_xlsx)
    app.router.add_get("/api/v1/stats/report.csv", get_report_csv)
    app.router.add_get("/stats", stats_page)
