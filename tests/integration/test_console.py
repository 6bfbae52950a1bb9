"""The console in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from contracts import topics
from tests.integration.test_presence import online_with, publish_as
from tests.support.broker import Mosquitto
from tests.support.events import id_number
from tests.support.procs import (
    Hub,
    XfvProcess,
    http_json,
    register_with_photo,
    start_edge,
    wait_until,
)


def login(page: Page, hub: Hub) -> None:
    page.goto(hub.base + "/")
    expect(page).to_have_url(hub.base + "/login")
    expect(page.locator("h1")).to_have_text("视频接访管理平台")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("用户名或密码错误")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", hub.admin_password)
    page.click("button[type=submit]")
    expect(page).to_have_url(hub.base + "/")


def test_console_shows_a_box_go_offline_without_a_reload(
    tmp_path: Path,
    browser: Browser,
    hub: Hub,
    mosquitto: Mosquitto,
    processes: list[XfvProcess],
) -> None:
    token = hub.login()
    doomed = start_edge(tmp_path / "a", "box-a", "510104020", mosquitto)
    processes += [doomed, start_edge(tmp_path / "b", "box-b", "510104021", mosquitto)]
    for node in ("box-a", "box-b"):
        wait_until(f"{node} online", lambda n=node: online_with(hub, token, n))

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    login(page, hub)
    tile = page.locator('.tile[data-node="box-a"]')
    expect(tile).to_have_attribute("data-online", "true")
    expect(page.locator('.tile[data-node="box-b"]')).to_have_attribute("data-online", "true")
    expect(page.locator('[data-county="510104"] h2')).to_contain_text("锦江区")
    expect(page.locator('[data-township="510104020"] h3')).to_have_text("督院街街道")
    expect(page.locator("#n-online")).to_have_text("2")
    expect(page.locator("#live")).to_have_text("实时")
    page.evaluate("window.__sameDocument = 42")

    doomed.kill()
    expect(tile).to_have_attribute("data-online", "false", timeout=10_000)
    expect(tile.locator(".state")).to_have_text("离线")
    expect(page.locator("#n-offline")).to_have_text("1")
    expect(page.locator("#n-online")).to_have_text("1")
    assert page.evaluate("window.__sameDocument") == 42, "the page was reloaded"
    page.screenshot(path=str(tmp_path / "console-offline.png"), full_page=True)

    processes.append(doomed.start())
    expect(tile).to_have_attribute("data-online", "true", timeout=15_000)
    assert page.evaluate("window.__sameDocument") == 42

    page.click("#lang")
    expect(page.locator("header h1")).to_have_text("Video Reception · Box Wall")
    expect(page.locator('[data-township="510104020"] h3')).to_have_text("Duyuanjie Subdistrict")
    page.close()


def test_console_without_a_session_redirects_to_login(browser: Browser, hub: Hub) -> None:
    page = browser.new_page()
    page.goto(hub.base + "/?lang=en")
    expect(page).to_have_url(hub.base + "/login?lang=en")
    expect(page.locator("h1")).to_have_text("Video Reception Console")
    page.close()


def test_case_list_and_case_page(
    tmp_path: Path,
    browser: Browser,
    hub: Hub,
    mosquitto: Mosquitto,
    processes: list[XfvProcess],
) -> None:
    token = hub.login()
    processes.append(start_edge(tmp_path / "c", "box-c", "510104022", mosquitto))
    edge = wait_until("box-c online", lambda: online_with(hub, token, "box-c"))
    kiosk = f"http://127.0.0.1:{edge['kiosk_port']}"
    case_no, _ = register_with_photo(kiosk, hub, token, 5)

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    login(page, hub)
    page.click("text=案件")
    expect(page).to_have_url(hub.base + "/cases")
    row = page.locator(f'tr[data-case="{case_no}"]')
    expect(row).to_have_attribute("data-complete", "true")
    expect(row).to_contain_text("春熙路街道")
    expect(row).to_contain_text("申诉求决")
    expect(row).not_to_contain_text(id_number(5))
    page.screenshot(path=str(tmp_path / "cases.png"))
    row.locator("a").click()
    expect(page.locator("#case-no")).to_have_text(case_no)
    expect(page.locator('[data-field="id"]')).to_have_text(
        id_number(5)[:6] + "********" + id_number(5)[-4:]
    )
    expect(page.locator('#timeline [data-kind="registered"]')).to_contain_text("登记")
    image = page.locator("#photos img")
    expect(image).to_be_visible()
    page.wait_for_function("document.querySelector('#photos img').complete")
    assert page.evaluate("document.querySelector('#photos img').naturalWidth") == 640
    page.click("#reveal")
    expect(page.locator('[data-field="id"]')).to_have_text(id_number(5))
    page.screenshot(path=str(tmp_path / "case.png"), full_page=True)
    with sqlite3.connect(hub.dir / "state" / "hub.db") as db:
        reads = db.execute(
            "SELECT actor, target, json_extract(detail, '$.field') FROM audit "
            "WHERE action = 'pii.read' ORDER BY id"
        ).fetchall()
    assert reads == [("admin", case_no, "photo"), ("admin", case_no, "id_number")]
    page.close()


def test_quarantine_page_lists_refused_messages(
    browser: Browser, hub: Hub, mosquitto: Mosquitto
) -> None:
    publish_as("box-d", mosquitto, topics.edge_telemetry("box-d"), b"{broken", retain=False)
    token = hub.login()
    wait_until(
        "the message quarantined",
        lambda: http_json(hub.base + "/api/v1/quarantine", token)[1]["quarantine"],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    login(page, hub)
    page.goto(hub.base + "/quarantine")
    row = page.locator("#rows tr").first
    expect(row).to_contain_text("box-d")
    expect(row).to_contain_text("Invalid JSON")
    expect(row).to_contain_text(topics.edge_telemetry("box-d"))
    page.close()
