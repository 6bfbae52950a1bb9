"""The statistics API and dashboard of a real hub process, over the hand-counted data set of
``tests/workflow/test_stats.py`` written into the hub's own database."""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.request
from typing import Any

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from playwright.sync_api import Browser, expect

from hub.store.migrations import migrations
from runtime.sqlite import open_database
from tests.support.procs import Hub, http_json
from tests.workflow.test_stats import T3, seed

APRIL = "from=2026-04-01&to=2026-04-30"


@pytest.fixture
def seeded(hub: Hub) -> Hub:
    """The hub with the data set and two officials: 成都市 (city) and 青羊区 (county)."""
    db = open_database(hub.dir / "state" / "hub.db", migrations)
    seed(db)
    db.close()
    hub.add_user("city", "official", "5101", "city-password")
    hub.add_user("qingyang", "official", "510105", "county-password")
    return hub


def download(url: str, token: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get(hub: Hub, token: str, query: str) -> tuple[int, Any]:
    return http_json(f"{hub.base}/api/v1/stats{query}", token)


def test_a_county_official_sees_only_the_county(seeded: Hub) -> None:
    city = seeded.login("city", "city-password")
    county = seeded.login("qingyang", "county-password")
    status, body = get(seeded, city, f"?{APRIL}&group_by=county")
    assert status == 200, body
    assert body["total"]["registered"] == 6
    assert {g["key"] for g in body["groups"]} == {"510104", "510105"}
    status, body = get(seeded, county, f"?{APRIL}&group_by=unit")
    assert status == 200, body
    assert body["jurisdiction"] == "510105"
    assert body["total"]["registered"] == 2  # C5, C8: the Jinjiang cases are not counted
    assert body["total"]["timely_acceptance"] == {"met": 2, "total": 2, "rate": 1.0}
    assert body["total"]["on_time_completion"] == {"met": 0, "total": 1, "rate": 0.0}
    assert body["total"]["office_satisfaction"]["rate"] is None  # no rating: shown "—"
    assert [g["key"] for g in body["groups"]] == ["u3"]
    assert [t["code"] for t in body["by_township"]] == [T3]
    status, body = get(seeded, county, f"?{APRIL}&division=510104")
    assert status == 403, body
    status, ranking = http_json(f"{seeded.base}/api/v1/stats/ranking?month=2026-04", county)
    assert status == 200, ranking
    assert [(r["rank"], r["key"]) for r in ranking["ranking"]] == [(1, "u3")]


BAD = [
    ("?from=2026-13-01&to=2026-04-30", "from must be a date"),
    ("?from=2026-04-01&to=yesterday", "to must be a date"),
    ("?from=2026-04-30&to=2026-04-01", "before"),
    ("?from=2024-01-01&to=2026-04-01", "at most 366 days"),
    (f"?{APRIL}&group_by=street", "group_by must be one of"),
    (f"?{APRIL}&division=51x", "division"),
    ("/ranking?month=2026-4", "month must be YYYY-MM"),
    ("/report.csv?month=April", "month must be YYYY-MM"),
    ("/report.xlsx?month=2026-00", "month must be YYYY-MM"),
    ("/ranking?month=2999-01", "has not begun"),
]


def test_bad_parameters_get_400_saying_why(seeded: Hub) -> None:
    token = seeded.login()
    for query, says in BAD:
        status, body = get(seeded, token, query)
        assert status == 400, (query, body)
        assert says in body["error"], (query, body)
    status, _ = http_json(f"{seeded.base}/api/v1/stats?{APRIL}")
    assert status == 401  # and no figures without a token


def test_report_downloads(seeded: Hub) -> None:
    token = seeded.login("qingyang", "county-password")
    base = f"{seeded.base}/api/v1/stats/report"
    status, headers, body = download(f"{base}.xlsx?month=2026-04", token)
    assert status == 200
    assert headers["Content-Type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert headers["Content-Disposition"] == (
        'attachment; filename="xinfang-report-510105-2026-04.xlsx"'
    )
    rows = list(load_workbook(io.BytesIO(body))["单位排名"].iter_rows(values_only=True))
    assert rows[0][:4] == ("排名", "单位编号", "单位名称", "登记件数")
    assert [r[2] for r in rows[1:]] == ["青羊区住建局", "合计"]
    assert rows[-1][3] == 2

    status, headers, body = download(f"{base}.csv?month=2026-04", token)
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"].startswith("attachment;")
    parsed = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert parsed[0][:3] == ["排名", "单位编号", "单位名称"]
    assert [(r[0], r[2], r[3]) for r in parsed[1:]] == [
        ("1", "青羊区住建局", "2"),
        ("—", "合计", "2"),
    ]


def test_dashboard_draws_the_figures(browser: Browser, seeded: Hub) -> None:
    page = browser.new_page()
    page.goto(seeded.base + "/stats")
    expect(page).to_have_url(seeded.base + "/login")
    page.fill("input[name=username]", "qingyang")
    page.fill("input[name=password]", "county-password")
    page.click("button[type=submit]")
    page.goto(seeded.base + "/stats?from=2026-04-01&to=2026-04-30&month=2026-04")
    expect(page.locator("#n-registered")).to_have_text("2")
    expect(page.locator("#n-overdue")).to_have_text("1")  # C8
    acceptance = page.locator("#gauge-timely_acceptance")
    expect(acceptance.locator("svg[role=img] text")).to_have_text("100.0%")
    expect(acceptance.locator("figcaption")).to_have_text("及时受理率 100.0%（2/2）")
    expect(page.locator("#gauge-office_satisfaction svg text")).to_have_text("—")
    expect(page.locator("#chart-category figcaption")).to_have_text(
        "按类别登记件数：建议意见 0 件，检举控告 0 件，申诉求决 2 件"
    )
    expect(page.locator("#chart-township figcaption")).to_have_text(
        "按乡镇（街道）登记件数：太升路街道 2 件"
    )
    expect(page.locator("#chart-township svg rect")).to_have_count(1)
    expect(page.locator("#ranking tr[data-key=u3] td").first).to_have_text("1")
    expect(page.locator("#xlsx")).to_have_attribute(
        "href", "/api/v1/stats/report.xlsx?month=2026-04"
    )
    page.click("#lang")
    expect(acceptance.locator("figcaption")).to_have_text("Timely acceptance 100.0% (2/2)")
    page.fill("#from", "2026-05-01")
    page.fill("#to", "2026-04-01")
    page.locator("#to").dispatch_event("change")
    expect(page.locator("#error")).to_contain_text("before")
    page.close()
