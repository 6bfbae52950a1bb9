"""The case workflow through the real hub process: steps over the API, the cross-county 403
(API and console, audited), an incomplete reply returned, and reminders that fire exactly once
across hub restarts."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess

from playwright.sync_api import Browser, expect

from hub.config import REPLY_ELEMENTS
from hub.pii import PiiVault
from hub.store.migrations import migrations
from hub.workflow.seed import generate, insert_cases
from runtime.sqlite import open_database
from tests.integration.test_blob_access import audit_rows
from tests.support.console import console_sign_in
from tests.support.procs import XFV, Hub, http_json, wait_until

TOWNSHIP = "510104021"


def seed(hub: Hub, count: int) -> list[str]:
    key = hub.pii_key()
    db = open_database(hub.database, migrations)
    now = dt.datetime.now(dt.UTC)
    insert_cases(db, generate(PiiVault(key), [TOWNSHIP], count, start=now, days=1))
    numbers = [r[0] for r in db.execute("SELECT case_no FROM cases ORDER BY case_no")]
    db.close()
    return numbers


def post_step(hub: Hub, token: str, case_no: str, **body: object) -> tuple[int, dict[str, object]]:
    return http_json(f"{hub.base}/api/v1/cases/{case_no}/steps", token, body=body)


def test_steps_over_the_api_with_roles_and_the_cross_county_refusal(
    workflow_hub: Hub, browser: Browser
) -> None:
    hub = workflow_hub
    case_no = seed(hub, 2)[0]
    office, handler = (
        hub.login("office", "office-password"),
        hub.login("handler", "handler-password"),
    )
    qy = hub.login("qy", "qy-password")
    wait_until("case adopted", lambda: hub.query("SELECT light FROM cases")[0][0] == "green")

    status, body = post_step(hub, office, case_no, action="fly")
    assert status == 422 and body["field"] == "action"
    status, body = post_step(hub, office, case_no, action="route", unit_id="jj-zjj")
    assert status == 200 and body["case"]["state"] == "routed"  # type: ignore[index]
    assert post_step(hub, handler, case_no, action="accept")[0] == 200
    assert post_step(hub, handler, case_no, action="start")[0] == 200
    partial = {e: "有" for e in REPLY_ELEMENTS if e != "信访人签字"}
    status, body = post_step(hub, handler, case_no, action="reply", elements=partial)
    assert status == 422 and body["missing"] == ["信访人签字"]
    assert "发回重办" in str(body["error"])
    full = {e: "有" for e in REPLY_ELEMENTS}
    assert post_step(hub, handler, case_no, action="reply", elements=full)[0] == 200
    status, body = post_step(hub, handler, case_no, action="return", note="重办")
    assert status == 403 and "may not 'return'" in str(body["error"])

    status, flow = http_json(f"{hub.base}/api/v1/cases/{case_no}/workflow", office)
    assert status == 200 and flow["state"] == "replied" and flow["state_label"] == "答复"
    assert [s["action"] for s in flow["steps"]] == ["route", "accept", "start", "reply"]
    assert {d["kind"]: d["state"] for d in flow["deadlines"]} == {
        "route": "met",
        "accept": "met",
        "handle": "met",
    }
    kinds = [r[0] for r in hub.query("SELECT kind FROM case_timeline WHERE case_no = ?", case_no)]
    assert "reply_returned" in kinds

    # Another county: 403 from every route and the console page, each attempt audited.
    assert http_json(f"{hub.base}/api/v1/cases/{case_no}", qy)[0] == 403
    assert http_json(f"{hub.base}/api/v1/cases/{case_no}/workflow", qy)[0] == 403
    assert post_step(hub, qy, case_no, action="archive")[0] == 403
    assert http_json(f"{hub.base}/api/v1/cases?limit=10", qy)[1]["total"] == 0
    page = browser.new_page()
    console_sign_in(page, hub.base, "qy", "qy-password")
    response = page.goto(f"{hub.base}/cases/{case_no}")
    assert response is not None and response.status == 403
    assert page.locator("h1").inner_text() == "无权查看该案件"
    page.close()
    denied = [(actor, target) for actor, target, _ in audit_rows(hub, "case.denied")]
    assert denied == [("qy", case_no)] * 4


def test_reminders_fire_once_across_hub_restarts(workflow_hub: Hub) -> None:
    hub = workflow_hub
    case_no = seed(hub, 1)[0]
    wait_until("case adopted", lambda: hub.query("SELECT count(*) FROM deadlines")[0][0] == 1)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8) + dt.timedelta(days=2)).date()
    with sqlite3.connect(hub.database) as db:
        db.execute(  # a 15-day deadline with 2 days left: the 3-day reminder is due
            "UPDATE deadlines SET due = ?, started_on = ? WHERE case_no = ?",
            [soon.isoformat(), (soon - dt.timedelta(days=15)).isoformat(), case_no],
        )

    def reminders() -> list[tuple[object, ...]]:
        return hub.query("SELECT kind, recipient FROM notifications ORDER BY kind")

    wait_until("reminder written", lambda: len(reminders()) == 1)
    assert reminders() == [("before_3", "office:510104")]
    office = hub.login("office", "office-password")
    status, inbox = http_json(f"{hub.base}/api/v1/inbox", office)
    assert status == 200 and inbox["unread"] == 1
    assert "届满" in inbox["notifications"][0]["text"]
    for _ in range(2):
        assert hub.process is not None
        hub.process.kill()  # waits for the process to end
        with sqlite3.connect(hub.database) as db:  # the first scan after the start resets it
            db.execute("UPDATE cases SET light = NULL")
        hub.restart()
        wait_until("a scan after restart", lambda: hub.query("SELECT light FROM cases")[0][0])
    assert reminders() == [("before_3", "office:510104")]
    status, listing = http_json(f"{hub.base}/api/v1/cases?light=yellow", office)
    assert status == 200 and [c["case_no"] for c in listing["cases"]] == [case_no]


def test_the_supervision_wall_and_the_case_list_show_the_lights(
    workflow_hub: Hub, browser: Browser
) -> None:
    hub = workflow_hub
    late, fine = seed(hub, 2)
    wait_until("cases adopted", lambda: hub.query("SELECT count(*) FROM deadlines")[0][0] == 2)
    with sqlite3.connect(hub.database) as db:
        db.execute("UPDATE deadlines SET due = '2026-01-05' WHERE case_no = ?", [late])
    wait_until(
        "the late case supervised",
        lambda: hub.query("SELECT supervised_reason FROM cases WHERE case_no = ?", late)[0][0],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(hub.base + "/login")
    page.fill("input[name=username]", "office")
    page.fill("input[name=password]", "office-password")
    page.click("button[type=submit]")
    page.wait_for_url(hub.base + "/")
    page.goto(hub.base + "/supervision")
    expect(page.locator("#n-red")).to_have_text("1")
    expect(page.locator("#n-green")).to_have_text("1")
    row = page.locator(f'tr[data-case="{late}"]')
    expect(row).to_have_attribute("data-light", "red")
    expect(row).to_contain_text("超期自动列入")
    expect(page.locator(f'tr[data-case="{fine}"]')).to_have_count(0)
    page.goto(hub.base + "/cases")
    expect(page.locator(f'tr[data-case="{late}"] td[data-light]')).to_have_attribute(
        "data-light", "red"
    )
    expect(page.locator(f'tr[data-case="{fine}"] td[data-light]')).to_contain_text("正常")
    page.select_option("#light", "red")
    expect(page.locator("tbody#rows tr")).to_have_count(1)
    page.close()


def test_a_units_handler_sees_and_acts_on_its_units_cases_only(workflow_hub: Hub) -> None:
    hub = workflow_hub
    mine, other = seed(hub, 2)
    office, handler = (
        hub.login("office", "office-password"),
        hub.login("handler", "handler-password"),
    )
    wait_until(
        "cases adopted",
        lambda: hub.query("SELECT count(*) FROM cases WHERE light IS NOT NULL")[0][0] == 2,
    )
    assert http_json(f"{hub.base}/api/v1/me", handler)[1]["unit_id"] == "jj-zjj"
    assert http_json(f"{hub.base}/api/v1/cases?limit=10", handler)[1]["total"] == 0
    assert post_step(hub, handler, mine, action="accept")[0] == 403  # not yet routed to it

    assert post_step(hub, office, mine, action="route", unit_id="jj-zjj")[0] == 200
    listed = http_json(f"{hub.base}/api/v1/cases?limit=10", handler)[1]
    assert [c["case_no"] for c in listed["cases"]] == [mine]
    assert http_json(f"{hub.base}/api/v1/cases/{mine}", handler)[0] == 200
    assert http_json(f"{hub.base}/api/v1/cases/{other}", handler)[0] == 403
    assert http_json(f"{hub.base}/api/v1/cases/{other}/workflow", handler)[0] == 403
    assert post_step(hub, handler, other, action="accept")[0] == 403
    assert sum(http_json(f"{hub.base}/api/v1/supervision", handler)[1]["lights"].values()) == 1
    assert sum(http_json(f"{hub.base}/api/v1/supervision", office)[1]["lights"].values()) == 2
    assert http_json(f"{hub.base}/api/v1/stats?unit_id=other-unit", handler)[0] == 403
    assert post_step(hub, handler, mine, action="accept")[0] == 200
    denied = [target for _, target, _ in audit_rows(hub, "case.denied")]
    assert denied == [mine, other, other, other]


def test_add_user_refuses_a_unit_user_without_a_known_unit(workflow_hub: Hub) -> None:
    hub = workflow_hub
    for extra, says in (([], "needs the unit"), (["--unit", "nowhere"], "no unit 'nowhere'")):
        run = subprocess.run(
            [
                XFV,
                "hub",
                "add-user",
                "--config",
                str(hub.config_path),
                "--username",
                "li",
                "--role",
                "unit",
                "--jurisdiction",
                "510104",
                "--password",
                "li-password",
                *extra,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 2 and says in run.stderr, run.stderr
    assert hub.query("SELECT count(*) FROM users WHERE username = 'li'")[0][0] == 0
