"""The officials' console runs the case workflow: the 办理 panel on the case page (state,
deadlines with lights, one button per permitted step, the step forms, a returned reply, likely
duplicates and merging) and the reminder inbox, in a real Chromium against the real hub."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from playwright.sync_api import Browser, Page, expect

from hub.config import REPLY_ELEMENTS
from hub.workflow.states import State
from tests.integration.test_duplicates_api import seed as seed_duplicates
from tests.integration.test_workflow_api import post_step, seed
from tests.support.console import console_sign_in
from tests.support.procs import Hub, http_json, wait_until


def sign_in(browser: Browser, hub: Hub, user: str) -> Page:
    """A fresh browser context at the console's 1280x800, signed in as ``user``."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    console_sign_in(page, hub.base, user, f"{user}-password")
    return page


def workflow(hub: Hub, token: str, case_no: str) -> dict[str, Any]:
    status, body = http_json(f"{hub.base}/api/v1/cases/{case_no}/workflow", token)
    assert status == 200 and isinstance(body, dict), body
    return body


def adopted(hub: Hub, count: int) -> None:
    wait_until(
        "cases adopted by the deadline scan",
        lambda: hub.query("SELECT count(*) FROM deadlines")[0][0] >= count,
    )


def test_the_office_routes_a_fresh_case_from_the_case_page(
    workflow_hub: Hub, browser: Browser
) -> None:
    hub = workflow_hub
    [case_no] = seed(hub, 1)
    adopted(hub, 1)
    page = sign_in(browser, hub, "office")
    page.goto(f"{hub.base}/cases/{case_no}")
    expect(page.locator("#workflow-state")).to_have_text(State.REGISTERED.label_zh)
    route_light = page.locator('tr[data-deadline="route"] [data-light]')
    expect(route_light).to_have_attribute("data-light", "green")
    expect(page.locator('tr[data-deadline="route"]')).to_contain_text("自然日")
    expect(page.locator('button[data-action="route"]')).to_be_visible()
    expect(page.locator("#supervised")).to_be_hidden()

    page.click('button[data-action="route"]')
    page.select_option('#step-form select[name="unit_id"]', "jj-zjj")
    page.fill('#step-form textarea[name="note"]', "请住建局依法办理")
    page.click('#step-form button[type="submit"]')

    expect(page.locator("#workflow-state")).to_have_text(State.ROUTED.label_zh)
    expect(page.locator('[data-workflow="resp_unit"]')).to_have_text("锦江区住建局")
    expect(page.locator("#step-form")).to_have_count(0)
    expect(page.locator('tr[data-deadline="route"]')).to_have_attribute("data-state", "met")
    expect(page.locator('tr[data-deadline="accept"] [data-light]')).to_have_attribute(
        "data-light", "green"
    )
    step = page.locator('#timeline li[data-kind="step"][data-action="route"]')
    expect(step).to_contain_text("请住建局依法办理")
    expect(step).to_contain_text(f"{State.REGISTERED.label_zh} → {State.ROUTED.label_zh}")
    flow = workflow(hub, hub.login("office", "office-password"), case_no)
    assert flow["state"] == "routed" and flow["unit_id"] == "jj-zjj"
    assert [(s["action"], s["actor"], s["note"]) for s in flow["steps"]] == [
        ("route", "office", "请住建局依法办理")
    ]

    page.click("#lang")
    expect(page.locator("#workflow-state")).to_have_text("Routed")
    expect(page.locator('button[data-action="accept"]')).to_have_text("Accept")
    page.context.close()


def test_the_handler_replies_and_an_incomplete_reply_is_returned(
    workflow_hub: Hub, browser: Browser
) -> None:
    hub = workflow_hub
    [case_no] = seed(hub, 1)
    adopted(hub, 1)
    office = hub.login("office", "office-password")
    assert post_step(hub, office, case_no, action="route", unit_id="jj-zjj")[0] == 200
    page = sign_in(browser, hub, "handler")
    page.goto(f"{hub.base}/cases/{case_no}")
    expect(page.locator("#workflow-state")).to_have_text(State.ROUTED.label_zh)
    expect(page.locator("#actions button")).to_have_count(2)  # 受理, 不予受理

    page.click('button[data-action="accept"]')
    page.click('#step-form button[type="submit"]')
    expect(page.locator("#workflow-state")).to_have_text(State.ACCEPTED.label_zh)
    expect(page.locator('tr[data-deadline="handle"] [data-light]')).to_have_attribute(
        "data-light", "green"
    )
    page.click('button[data-action="start"]')
    page.click('#step-form button[type="submit"]')
    expect(page.locator("#workflow-state")).to_have_text(State.HANDLING.label_zh)

    page.click('button[data-action="reply"]')
    left_out = [REPLY_ELEMENTS[1], REPLY_ELEMENTS[-1]]
    for element in REPLY_ELEMENTS:
        if element not in left_out:
            page.fill(f'#step-form textarea[data-element="{element}"]', f"{element}：已完成")
    page.click('#step-form button[type="submit"]')
    error = page.locator("#step-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("发回重办")
    expect(page.locator("#step-missing li")).to_have_text(left_out)
    invalid = page.locator('#step-form textarea[aria-invalid="true"]')
    expect(invalid).to_have_count(2)
    assert [invalid.nth(i).get_attribute("data-element") for i in range(2)] == left_out
    expect(page.locator("#workflow-state")).to_have_text(State.HANDLING.label_zh)
    returned = page.locator('#timeline li[data-kind="reply_returned"]')
    expect(returned).to_contain_text("发回重办")
    expect(returned).to_contain_text("、".join(left_out))

    for element in left_out:
        page.fill(f'#step-form textarea[data-element="{element}"]', f"{element}：已补齐")
    page.click('#step-form button[type="submit"]')
    expect(page.locator("#workflow-state")).to_have_text(State.REPLIED.label_zh)
    expect(error).to_be_hidden()
    expect(returned).to_have_count(1)
    # A unit has no step to take on a replied case: no buttons, and it says so.
    expect(page.locator("#actions button")).to_have_count(0)
    expect(page.locator("#no-actions")).to_be_visible()
    flow = workflow(hub, office, case_no)
    assert flow["state"] == "replied"
    reply = flow["steps"][-1]
    assert reply["action"] == "reply" and reply["actor"] == "handler"
    assert reply["detail"]["elements"][left_out[0]] == f"{left_out[0]}：已补齐"
    assert workflow(hub, hub.login("handler", "handler-password"), case_no)["actions"] == []
    page.context.close()


def test_supervision_badge_duplicates_and_a_one_click_merge(
    workflow_hub: Hub, browser: Browser
) -> None:
    hub = workflow_hub
    seed_duplicates(hub)
    wait_until(
        "cases adopted",
        lambda: hub.query("SELECT count(*) FROM deadlines WHERE case_no = 'REPEAT'")[0][0] > 0,
    )
    page = sign_in(browser, hub, "office")
    page.goto(f"{hub.base}/cases/REPEAT")
    row = page.locator('tr[data-duplicate="ORIGINAL"]')
    expect(row).to_contain_text("同一信访人")
    expect(page.locator('tr[data-duplicate="ELSEWHERE"]')).to_have_count(0)
    score = float(row.locator("[data-score]").get_attribute("data-score") or 0)
    assert 0.9 < score <= 1

    page.click('button[data-action="supervise"]')
    page.click('#step-form button[type="submit"]')  # the instruction is required: not sent
    expect(page.locator("#supervised")).to_be_hidden()
    page.fill('#step-form textarea[name="note"]', "请于本周内办结")
    page.click('#step-form button[type="submit"]')
    expect(page.locator("#supervised")).to_be_visible()

    page.click('button[data-action="merge"]')
    page.click('#step-form button[data-into="ORIGINAL"]')
    expect(page.locator('#step-form input[name="into"]')).to_have_value("ORIGINAL")
    page.click('#step-form button[type="submit"]')
    expect(page.locator("#workflow-state")).to_have_text(State.MERGED.label_zh)
    expect(page.locator("#merged-into")).to_have_attribute("href", "/cases/ORIGINAL")
    expect(page.locator("#supervised")).to_be_hidden()
    expect(page.locator("#actions button")).to_have_count(0)
    flow = workflow(hub, hub.login("office", "office-password"), "REPEAT")
    assert flow["merged_into"] == "ORIGINAL"
    assert [s["action"] for s in flow["steps"]] == ["supervise", "merge"]
    page.context.close()


def test_the_inbox_lists_reminders_and_marks_them_read(workflow_hub: Hub, browser: Browser) -> None:
    hub = workflow_hub
    [case_no] = seed(hub, 1)
    adopted(hub, 1)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    with sqlite3.connect(hub.database) as db:
        ids = [
            db.execute(
                "INSERT INTO notifications (case_no, kind, recipient, channel, text, "
                "created_at, sent_at) VALUES (?, ?, 'office', 'console', ?, ?, ?)",
                [case_no, kind, f"案件 {case_no} 的「转送交办期限」{text}", now, now],
            ).lastrowid
            for kind, text in (("before_3", "期限将届满"), ("overdue", "已超期"))
        ]
    office = hub.login("office", "office-password")

    def unread() -> int:
        status, box = http_json(f"{hub.base}/api/v1/inbox", office)
        assert status == 200, box
        return int(box["unread"])

    before = unread()
    assert before >= 2
    page = sign_in(browser, hub, "office")
    page.goto(f"{hub.base}/cases/{case_no}")
    expect(page.locator("#inbox-count")).to_have_text(str(before))
    page.goto(hub.base + "/cases")
    expect(page.locator("#inbox-count")).to_have_text(str(before))
    page.click("a.inbox-link")
    page.wait_for_url(hub.base + "/inbox")
    soon, late = (page.locator(f'tr[data-id="{i}"]') for i in ids)
    expect(soon).to_contain_text("还剩 3 天到期")
    expect(late).to_contain_text("已超期")
    expect(late.locator("a")).to_have_attribute("href", f"/cases/{case_no}")
    expect(late).to_have_attribute("data-unread", "true")
    assert late.locator("td").first.evaluate("e => getComputedStyle(e).fontWeight") == "700"

    late.locator("button[data-read]").click()
    expect(late).to_have_attribute("data-unread", "false")
    expect(late.locator("button[data-read]")).to_have_count(0)
    expect(page.locator("#inbox-count")).to_have_text(str(before - 1))
    expect(page.locator("#n-unread")).to_have_text(str(before - 1))
    assert unread() == before - 1
    read_at = hub.query("SELECT read_at FROM notifications WHERE id = ?", ids[1])[0][0]
    assert read_at is not None
    assert hub.query("SELECT read_at FROM notifications WHERE id = ?", ids[0])[0][0] is None
    page.goto(hub.base + "/supervision")
    expect(page.locator("#inbox-count")).to_have_text(str(before - 1))
    page.context.close()
