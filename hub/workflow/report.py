"""The monthly report (月通报): one month's statistics per unit and their ranking, as CSV and
as an XLSX workbook, with Chinese column headers.

Both files hold the same table: one row per unit in rank order (units without activity last,
unranked), then the cases not yet routed to a unit, then the total. The workbook adds the
registrations per township and a sheet naming the period and the definitions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]
from openpyxl.worksheet.worksheet import Worksheet  # type: ignore[import-untyped]
from sqlite_utils import Database

from contracts.cases import Category
from hub.workflow.stats import Figures, Ranked, Rate, Stats, month_period, ranking, stats

DASH = "—"
RANKING_BASIS_ZH = "按期办结率、及时受理率、责任单位满意率依次从高到低；无案件的单位不参与排名"
RANKING_BASIS_EN = (
    "on-time completion rate, then timely acceptance rate, then the responsible unit's "
    "satisfaction rate, highest first; units without cases are not ranked"
)

Cell = str | int | float | None
Column = tuple[str, Callable[[Figures], int | Rate]]


def _category(category: Category) -> Callable[[Figures], int]:
    return lambda f: f.by_category.get(category.value, 0)


COLUMNS: tuple[Column, ...] = (
    ("登记件数", lambda f: f.registered),
    *((c.label_zh, _category(c)) for c in Category),
    ("及时受理率", lambda f: f.timely_acceptance),
    ("按期办结率", lambda f: f.on_time_completion),
    ("信访部门满意率", lambda f: f.office_satisfaction),
    ("责任单位满意率", lambda f: f.unit_satisfaction),
    ("参评率", lambda f: f.participation),
    ("超期件数", lambda f: f.overdue),
)
"""The figures of a row; each rate becomes three columns: the numerator, the denominator
and the rate."""

RATE_PARTS = {
    "及时受理率": ("及时受理件数", "应受理件数"),
    "按期办结率": ("按期办结件数", "应办结件数"),
    "信访部门满意率": ("信访部门满意件数", "评价件数"),
    "责任单位满意率": ("责任单位满意件数", "评价件数"),
    "参评率": ("参评件数", "应参评件数"),
}


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    month: str
    stats: Stats
    ranking: tuple[Ranked, ...]

    @property
    def headers(self) -> list[str]:
        out = ["排名", "单位编号", "单位名称"]
        for name, _ in COLUMNS:
            out += [*RATE_PARTS[name], name] if name in RATE_PARTS else [name]
        return out

    def rows(self) -> list[list[Cell]]:
        """The table's rows: the ranked units, the unrouted cases (when any), the total.
        Rates are fractions (0.875), ``None`` when they have no denominator."""
        out = [_row(r.rank, r.figures) for r in self.ranking]
        unrouted = next((g for g in self.stats.groups if g.key is None), None)
        if unrouted is not None and unrouted.active:
            out.append(_row(None, unrouted))
        out.append(_row(None, self.stats.total, label="合计"))
        return out


def _row(rank: int | None, f: Figures, label: str | None = None) -> list[Cell]:
    row: list[Cell] = [rank, "" if label else (f.key or ""), label or f.name_zh]
    for _, get in COLUMNS:
        value = get(f)
        if isinstance(value, Rate):
            row += [value.met, value.total, value.value]
        else:
            row.append(value)
    return row


def monthly_report(
    db: Database, jurisdiction: str, month: str, today: dt.date | None = None
) -> MonthlyReport:
    """The report of ``month`` (``YYYY-MM``) for the units and cases of ``jurisdiction``."""
    start, end = month_period(month)
    result = stats(db, jurisdiction, start, end, group_by="unit", today=today)
    return MonthlyReport(month, result, tuple(ranking(result)))


def _text(cell: Cell) -> str:
    if cell is None:
        return DASH
    if isinstance(cell, float):
        return f"{cell * 100:.1f}%"
    return str(cell)


def to_csv(report: MonthlyReport) -> bytes:
    """UTF-8 with a byte-order mark (so spreadsheet programs read the Chinese right); rates as
    "87.5%", "—" where a rate has no denominator or a unit has no rank."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(report.headers)
    for row in report.rows():
        writer.writerow([_text(c) for c in row])
    return out.getvalue().encode("utf-8-sig")


def to_xlsx(report: MonthlyReport) -> bytes:
    """A workbook: 单位排名 (the table, rates as numbers formatted as percentages, "—"
    without a denominator), 乡镇统计 (registrations per township), 说明 (period, scope,
    ranking basis)."""
    s = report.stats
    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet.title = "单位排名"
    sheet.append(report.headers)
    for row in report.rows():
        sheet.append([DASH if c is None else c for c in row])
    rate_columns = [i + 1 for i, h in enumerate(report.headers) if h in RATE_PARTS]
    for column in rate_columns:
        for (cell,) in sheet.iter_rows(min_row=2, min_col=column, max_col=column):
            if isinstance(cell.value, float):
                cell.number_format = "0.0%"
    _finish(sheet, report.headers)

    towns = book.create_sheet("乡镇统计")
    town_headers = ["乡镇代码", "乡镇（街道）", "登记件数"]
    towns.append(town_headers)
    for t in s.by_township:
        towns.append([t.code, t.name_zh, t.registered])
    _finish(towns, town_headers)

    notes = book.create_sheet("说明")
    for line in (
        ("月份", report.month),
        ("统计期间", f"{s.start.isoformat()} 至 {s.end.isoformat()}（北京时间）"),
        ("统计范围", f"{s.total.name_zh}（{s.jurisdiction}）"),
        ("超期统计日", s.as_of.isoformat()),
        ("生成日期", s.today.isoformat()),
        ("排名依据", RANKING_BASIS_ZH),
        ("口径说明", "各项比率的分子、分母见 docs/statistics.md；分母为 0 时显示“—”"),
    ):
        notes.append(list(line))
    notes.column_dimensions["A"].width = 14
    notes.column_dimensions["B"].width = 80
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _finish(sheet: Worksheet, headers: list[str]) -> None:
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for i, header in enumerate(headers, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = max(10, 2 * len(header) + 2)
