"""One box's console page (``/edges/{node}``) in a real headless Chromium, against a real hub,
real boxes and the real Mosquitto: its sync state, live, and the jurisdiction refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from contracts import topics
from contracts.presence import Birth
from tests.integration.test_presence import online_with, publish_as
from tests.support.broker import Mosquitto
from tests.support.console import console_sign_in
from tests.support.events import FORM, RawClient, chain_of, id_number
from tests.support.procs import Hub, XfvProcess, http_json, start_edge_on_port, wait_until

TOWNSHIP = "510104021"  # 锦江区 盐市口街道


def sign_in(page: Page, hub: Hub, username: str = "admin", password: str | None = None) -> None:
    console_sign_in(page, hub.base, username, password or hub.admin_password)


def register(kiosk: str, n: int) -> str:
    status, receipt = http_json(kiosk + "/api/v1/cases", body={**FORM, "id_number": id_number(n)})
    assert status == 201, receipt
    return str(receipt["case_no"])


def cases_of(hub: Hub, token: str, query: str) -> dict[str, Any]:
    status, body = http_json(f"{hub.base}/api/v1/cases?{query}", token)
    assert status == 200, body
    return dict(body)


def synced(hub: Hub, token: str, node: str, cases: int) -> dict[str, Any] | None:
    """The box's row once ``cases`` of its cases are at the hub and its box reports an empty
    outbox (so the page's headline is settled)."""
    if cases_of(hub, token, f"node={node}")["total"] != cases:
        return None
    edge = hub.edge(token, node)
    return edge if edge and edge["sync"]["outbox_depth"] == 0 else None


def stat(page: Page, key: str) -> Any:
    return page.locator(f'[data-stat="{key}"] .value')


def test_cases_can_be_listed_by_box(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    box_i, kiosk_i = start_edge_on_port(tmp_path / "i", "box-i", TOWNSHIP, mosquitto)
    box_j, kiosk_j = start_edge_on_port(tmp_path / "j", "box-j", "510104020", mosquitto)
    processes += [box_i, box_j]
    for node in ("box-i", "box-j"):
        wait_until(f"{node} online", lambda n=node: online_with(hub, token, n))
    mine = {register(kiosk_i, 1), register(kiosk_i, 2)}
    register(kiosk_j, 3)
    wait_until("3 cases at the hub", lambda: cases_of(hub, token, "limit=50")["total"] == 3)

    body = cases_of(hub, token, "node=box-i")
    assert body["total"] == 2
    assert {c["case_no"] for c in body["cases"]} == mine
    assert {c["node"] for c in body["cases"]} == {"box-i"}
    assert cases_of(hub, token, "node=box-l")["total"] == 0
    status, body = http_json(f"{hub.base}/api/v1/cases?node=Box%20I", token)
    assert status == 400 and body["error"].startswith("node: ")
    hub.add_user("qingyang", "official", "510105", "qingyang-pass")
    other_county = hub.login("qingyang", "qingyang-pass")
    assert cases_of(hub, other_county, "node=box-i")["total"] == 0


def test_box_page_shows_its_sync_state_live(
    tmp_path: Path,
    browser: Browser,
    hub: Hub,
    mosquitto: Mosquitto,
    processes: list[XfvProcess],
) -> None:
    token = hub.login()
    box, kiosk = start_edge_on_port(tmp_path / "i", "box-i", TOWNSHIP, mosquitto)
    processes.append(box)
    wait_until("box-i online", lambda: online_with(hub, token, "box-i"))
    first = [register(kiosk, 1), register(kiosk, 2)]
    edge = wait_until("2 cases synced", lambda: synced(hub, token, "box-i", 2))
    head = edge["sync"]["acked_through"]
    assert head >= 2 and edge["sync"]["chain_ok"]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, hub)
    page.locator('.tile[data-node="box-i"] .name a').click()
    expect(page).to_have_url(hub.base + "/edges/box-i")
    expect(page.locator("#node")).to_have_text("box-i")
    expect(page.locator("#state")).to_have_text("在线")
    expect(page.locator("#light")).to_have_class("light big green")
    expect(page.locator('[data-field="township"]')).to_have_text("盐市口街道 (510104021)")
    expect(page.locator('[data-field="box_no"]')).to_have_text(first[0].split("-")[1])
    expect(stat(page, "synced")).to_have_text(str(head))
    expect(stat(page, "acked")).to_have_text(f"#{head}")
    expect(stat(page, "waiting")).to_have_text("0")
    chain = page.locator('[data-stat="chain"]')
    expect(chain).to_have_attribute("data-ok", "true")
    expect(chain.locator(".light.green")).to_be_visible()
    expect(chain.locator(".value")).to_have_text("完整")
    expect(stat(page, "held")).to_have_text("0")
    expect(stat(page, "resyncs")).to_have_text("0")
    expect(page.locator("#sync")).to_have_attribute("data-state", "ok")
    expect(page.locator("#sync-headline")).to_have_text("同步正常，全部已上传")
    expect(page.locator("#live")).to_have_text("实时")
    expect(page.locator('[data-stat="memory"] .value')).to_contain_text("%")
    for case_no in first:
        expect(page.locator(f'#recent li[data-case="{case_no}"] a')).to_have_attribute(
            "href", f"/cases/{case_no}"
        )
    expect(page.locator("#case-total")).to_have_text("共 2 件")

    page.evaluate("window.__sameDocument = 42")
    third = register(kiosk, 3)
    edge = wait_until("the third case synced", lambda: synced(hub, token, "box-i", 3))
    assert edge["sync"]["acked_through"] > head
    expect(stat(page, "synced")).to_have_text(str(edge["sync"]["acked_through"]), timeout=10_000)
    expect(page.locator(f'#recent li[data-case="{third}"]')).to_be_visible()
    expect(page.locator("#case-total")).to_have_text("共 3 件")
    assert page.evaluate("window.__sameDocument") == 42, "the page was reloaded"
    page.screenshot(path=str(tmp_path / "edge.png"), full_page=True)

    page.click("#lang")
    expect(page.locator("header h1")).to_have_text("Video Reception · Box")
    expect(page.locator('[data-stat="synced"] .label')).to_have_text("Events synced at the hub")
    expect(page.locator("#sync-headline")).to_have_text("In sync: everything uploaded")
    expect(page.locator('[data-field="township"]')).to_have_text(
        "Yanshikou Subdistrict (510104021)"
    )
    page.close()


def test_box_page_refuses_a_box_outside_the_jurisdiction(
    tmp_path: Path,
    browser: Browser,
    hub: Hub,
    mosquitto: Mosquitto,
    processes: list[XfvProcess],
) -> None:
    """Another county's official gets the API's refusal (404), on the page as on the API."""
    hub.add_user("qingyang", "official", "510105", "qingyang-pass")
    token = hub.login()
    box, _ = start_edge_on_port(tmp_path / "j", "box-j", TOWNSHIP, mosquitto)
    processes.append(box)
    wait_until("box-j online", lambda: online_with(hub, token, "box-j"))
    other_county = hub.login("qingyang", "qingyang-pass")
    assert http_json(hub.base + "/api/v1/edges/box-j", other_county)[0] == 404

    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, "qingyang", "qingyang-pass")
    expect(page.locator('.tile[data-node="box-j"]')).to_have_count(0)
    response = page.goto(hub.base + "/edges/box-j")
    assert response is not None and response.status == 404
    expect(page.locator("#refused")).to_contain_text("您的辖区内没有这台终端")
    expect(page.locator("#refused-node")).to_have_text("box-j")
    expect(page.locator("#edge")).to_be_hidden()
    expect(page.locator("#node")).to_have_text("")
    context.close()

    # The same refusal whether or not the box exists; no session: the login form.
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub)
    response = page.goto(hub.base + "/edges/box-j")
    assert response is not None and response.status == 200
    expect(page.locator("#node")).to_have_text("box-j")
    response = page.goto(hub.base + "/edges/box-nowhere")
    assert response is not None and response.status == 404
    expect(page.locator("#refused")).to_be_visible()
    context.close()
    anonymous = browser.new_page()
    anonymous.goto(hub.base + "/edges/box-j")
    expect(anonymous).to_have_url(hub.base + "/login")
    anonymous.close()


def test_box_page_shows_a_broken_chain_in_red(
    tmp_path: Path, browser: Browser, hub: Hub, mosquitto: Mosquitto
) -> None:
    """A box (a raw client here) whose third event does not hash: red, with seq and reason."""
    token = hub.login()
    status_topic = topics.edge_status("box-l")
    birth = Birth(node="box-l", township=TOWNSHIP, version="test", bd_seq=1)
    publish_as("box-l", mosquitto, status_topic, birth.to_payload(), retain=True)
    raw = RawClient("box-l", mosquitto)
    try:
        wait_until("box-l online", lambda: online_with(hub, token, "box-l"))
        events = chain_of("box-l", 4)
        for e in events[:2]:
            raw.publish(topics.edge_events("box-l"), e)
        tampered = events[2].model_copy(update={"body": {**events[2].body, "township": "x"}})
        raw.publish(topics.edge_events("box-l"), tampered)
        raw.publish(topics.edge_events("box-l"), events[3])
        wait_until(
            "box-l flagged with seq 4 held",
            lambda: (
                (e := hub.edge(token, "box-l"))
                and not e["sync"]["chain_ok"]
                and e["sync"]["held"] == 1
            ),
        )

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, hub)
        page.goto(hub.base + "/edges/box-l")
        chain = page.locator('[data-stat="chain"]')
        expect(chain).to_have_attribute("data-ok", "false")
        expect(chain.locator(".light.red")).to_be_visible()
        expect(chain.locator(".value")).to_have_text("第 3 号起中断")
        expect(chain.locator(".hint")).to_contain_text("does not match the event")
        expect(page.locator("#sync")).to_have_attribute("data-state", "bad")
        expect(page.locator("#sync-headline")).to_have_text("数据链在第 3 号中断，已暂停接收")
        expect(stat(page, "synced")).to_have_text("2")
        expect(stat(page, "held")).to_have_text("1")
        page.screenshot(path=str(tmp_path / "edge-broken.png"), full_page=True)
        page.close()
    finally:
        raw.close()
        publish_as("box-l", mosquitto, status_topic, b"", retain=True)  # no birth for later hubs
