"""The kiosk's case-capture flow on the box's screen, in a real headless Chromium, and the
photo API behind it. Screenshots of every step land in ``tmp_path`` for a human to look at."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from playwright.sync_api import Browser, Page, Route, expect

from tests.integration.test_presence import online_with
from tests.support.broker import Mosquitto
from tests.support.events import id_number
from tests.support.procs import (
    Hub,
    XfvProcess,
    http_json,
    start_edge,
    start_edge_on_port,
    wait_until,
)

TOWNSHIP = "510104021"
CHECK_DIGIT_ZH = "身份证号码校验位不正确，请核对最后一位"
NO_HUB = "hub-that-never-comes"  # the box waits for this hub: its uplink is "down"
VIEWPORT = {"width": 1280, "height": 800}  # the box's 10-inch touch screen


def offline_box(
    directory: Path, node: str, mosquitto: Mosquitto, processes: list[XfvProcess], **extra: Any
) -> str:
    """A box whose hub never comes online; returns its kiosk's base URL."""
    box, base = start_edge_on_port(directory, node, TOWNSHIP, mosquitto, hub_id=NO_HUB, **extra)
    processes.append(box)
    wait_until(f"{node}'s kiosk", lambda: http_json(base + "/api/v1/health")[0] == 200)
    return base


def wrong_check_digit(number: str) -> str:
    return number[:-1] + ("1" if number[-1] != "1" else "2")


SMALL_THINGS = """() => {
  const shown = (el) => el.getClientRects().length && getComputedStyle(el).visibility !== "hidden";
  const bad = [];
  for (const b of document.querySelectorAll("button")) {
    const height = b.getBoundingClientRect().height;
    if (shown(b) && height < 64) bad.push(height + "px button " + b.textContent);
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || !shown(el)) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < 22) bad.push(size + "px " + n.textContent.trim().slice(0, 20));
  }
  return bad;
}"""


def shot(page: Page, tmp_path: Path, name: str) -> None:
    """Check every visible button is >= 64 px tall and all text >= 22 px, then screenshot."""
    small = page.evaluate(SMALL_THINGS)
    assert small == [], f"{name}: too small for the kiosk: {small}"
    page.screenshot(path=str(tmp_path / f"{name}.png"))


def step_is(page: Page, step: str) -> None:
    expect(page.locator("body")).to_have_attribute("data-step", step, timeout=10_000)


def fill_person(page: Page, number: str) -> None:
    page.fill("#name", "王秀英")
    page.fill("#phone", "139 0813 2233")
    page.fill("#address", "锦江区盐市口街道东大街 12 号 3 栋")
    page.fill("#id_number", number)


def fill_matter(page: Page, category: str, unit: str, content: str) -> None:
    """Pick ``category`` and fill the matter step, then go on to the photos."""
    page.click(f'.cat[data-category="{category}"]')
    page.fill("#concerned_unit", unit)
    page.fill("#content", content)
    page.click("#next")


def consent_and_person(page: Page, tmp_path: Path, good_id: str) -> None:
    step_is(page, "consent")
    expect(page.locator("#state")).to_have_text("已连接")
    expect(page.locator("#place")).to_have_text("盐市口街道")
    expect(page.locator("#next")).to_have_text("同意并继续")
    shot(page, tmp_path, "1-consent")
    page.click("#next")

    step_is(page, "person")
    fill_person(page, wrong_check_digit(good_id))
    expect(page.locator("#err-id_number")).to_have_text(CHECK_DIGIT_ZH)  # as soon as typed
    page.click("#next")
    step_is(page, "person")
    expect(page.locator("#id_number")).to_have_attribute("aria-invalid", "true")
    shot(page, tmp_path, "2-person-error")
    page.fill("#id_number", good_id)
    expect(page.locator("#err-id_number")).to_be_empty()
    page.click("#next")


def matter_and_photos(page: Page, tmp_path: Path) -> None:
    step_is(page, "matter")
    page.click("#next")
    expect(page.locator("#err-category")).to_have_text("请选择一个信访类别")
    page.click('.cat[data-category="claim"]')
    expect(page.locator('.cat[data-category="claim"]')).to_have_attribute("aria-checked", "true")
    expect(page.locator("#err-category")).to_be_empty()
    page.fill("#concerned_unit", "锦江区住房和城乡建设局")
    page.fill("#content", "楼顶漏水两年，多次找物业未解决，请求督促维修。")
    shot(page, tmp_path, "3-matter")
    page.click("#next")

    step_is(page, "photos")
    expect(page.locator("#next")).to_have_text("跳过")
    page.wait_for_function("document.getElementById('preview').naturalWidth === 640")
    for n in (1, 2):
        page.click("#shoot")
        expect(page.locator("#thumbs li")).to_have_count(n)
    expect(page.locator("#photo-count")).to_have_text("已拍 2 张，最多 6 张")
    expect(page.locator("#next")).to_have_text("下一步")
    page.wait_for_function(
        "[...document.querySelectorAll('#thumbs img')].every(i => i.naturalWidth === 640)"
    )
    shot(page, tmp_path, "4-photos")
    page.click("#next")


def review_and_submit(page: Page, tmp_path: Path, good_id: str) -> tuple[str, str]:
    step_is(page, "review")
    expect(page.locator('dd[data-field="id_number"]')).to_have_text(masked(good_id))
    expect(page.locator('dd[data-field="category"]')).to_have_text("申诉求决")
    expect(page.locator('dd[data-field="content"]')).to_contain_text("楼顶漏水两年")
    expect(page.locator("#review-photos img")).to_have_count(2)
    assert good_id not in page.locator("main").inner_text()
    page.click('.edit[data-goto="person"]')  # 修改 goes back with everything kept
    expect(page.locator("#id_number")).to_have_value(good_id)
    for step in ("matter", "photos", "review"):
        page.click("#next")
        step_is(page, step)
    shot(page, tmp_path, "5-review")
    page.click("#next")

    step_is(page, "done")
    case_no = page.locator("#case-no").inner_text()
    code = page.locator("#query-code").inner_text()
    assert re.fullmatch(rf"{TOWNSHIP}-01-\d{{6}}-\d{{4}}", case_no), case_no
    assert re.fullmatch(r"\d{6}", code), code
    expect(page.locator("#qr svg")).to_be_visible()
    font = page.locator("#query-code").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert font >= 60, "the query code must be LARGE"
    shot(page, tmp_path, "6-done")
    return case_no, code


def print_receipt(page: Page, tmp_path: Path, case_no: str, code: str) -> None:
    with page.expect_popup() as popup:
        page.click("#print")
    receipt = popup.value
    receipt.wait_for_load_state()
    expect(receipt.locator("body")).to_have_attribute("data-ready", "true")
    expect(receipt.locator("h1")).to_have_text("信访事项登记回执")
    expect(receipt.locator("#case-no")).to_have_text(case_no)
    expect(receipt.locator("#query-code")).to_have_text(code)
    expect(receipt.locator("#township")).to_have_text("盐市口街道")
    expect(receipt.locator("#qr svg path")).to_have_count(1)
    receipt.set_viewport_size({"width": 800, "height": 1000})
    receipt.screenshot(path=str(tmp_path / "7-receipt.png"), full_page=True)
    pdf = receipt.pdf(format="A5", print_background=True)
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1, "the receipt must fit one A5 page"
    receipt.close()


def masked(number: str) -> str:
    return number[:6] + "********" + number[14:]


def test_a_case_from_consent_to_receipt_reaches_the_hub(
    tmp_path: Path, browser: Browser, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    processes.append(start_edge(tmp_path / "box", "box-k", TOWNSHIP, mosquitto))
    edge = wait_until("box-k online", lambda: online_with(hub, token, "box-k"))
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"http://127.0.0.1:{edge['kiosk_port']}/")
    good_id = id_number(7)

    consent_and_person(page, tmp_path, good_id)
    matter_and_photos(page, tmp_path)
    case_no, code = review_and_submit(page, tmp_path, good_id)

    case = wait_until(
        f"{case_no} at the hub with 2 photos",
        lambda: (
            (r := http_json(f"{hub.base}/api/v1/cases/{case_no}", token))[0] == 200
            and r[1]["photos_total"] == 2
            and r[1]
        ),
    )
    assert case["name"] == "王秀英" and case["category"] == "claim"
    assert case["id_masked"] == masked(good_id)

    print_receipt(page, tmp_path, case_no, code)

    page.click("#again")
    step_is(page, "consent")
    assert page.evaluate("sessionStorage.getItem('xfv-receipt')") is None
    page.click("#next")
    expect(page.locator("#name")).to_have_value("")
    expect(page.locator("#id_number")).to_have_value("")
    page.close()


def test_with_the_uplink_down_the_box_registers_and_shows_the_servers_errors(
    tmp_path: Path, browser: Browser, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    kiosk = offline_box(tmp_path / "box", "box-off", mosquitto, processes)
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(kiosk + "/")
    expect(page.locator("#state")).to_have_text("离线（案件已保存在本机，恢复后自动上传）")
    page.click("#lang")
    expect(page.locator("#next")).to_have_text("Agree and continue")
    expect(page.locator("#state")).to_contain_text("Offline")
    shot(page, tmp_path, "consent-en")
    page.click("#next")
    page.click("#next")
    expect(page.locator("#err-name")).to_have_text("Please fill this in")
    shot(page, tmp_path, "person-en")
    page.click("#back")
    page.click("#lang")
    expect(page.locator("#next")).to_have_text("同意并继续")
    page.click("#next")
    fill_person(page, id_number(3))
    page.click("#next")
    fill_matter(page, "suggestion", "村委会", "建议在村口安装路灯。")
    page.click("#shoot")
    expect(page.locator("#thumbs li")).to_have_count(1)
    page.click("#next")
    step_is(page, "review")

    # Another case claims the photo first: only the server knows; its 422 code is shown in Chinese.
    staged = str(page.locator("#thumbs img").get_attribute("src")).rsplit("/", 1)[-1]
    form = {
        "name": "李四", "id_number": id_number(4), "phone": "13800138000", "address": "村里",
        "category": "claim", "concerned_unit": "村委会", "content": "另一件事", "photos": [staged],
    }  # fmt: skip
    assert http_json(kiosk + "/api/v1/cases", body=form)[0] == 201
    page.click("#next")
    step_is(page, "photos")
    expect(page.locator("#err-photos")).to_have_text("有照片已失效，请删除后重新拍照")
    shot(page, tmp_path, "server-error")
    page.click("#thumbs .del")
    expect(page.locator("#thumbs li")).to_have_count(0)
    page.click("#next")  # 跳过
    page.click("#next")  # 确认提交
    step_is(page, "done")
    expect(page.locator("#pending")).to_have_text("待上传 2 条", timeout=10_000)
    shot(page, tmp_path, "offline-done")
    page.close()


def get(url: str, source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """GET from a chosen loopback source address (127.0.0.2 is not the box's own screen)."""
    host, port = url.split("/")[2].split(":")
    path = "/" + url.split("/", 3)[3]
    conn = http.client.HTTPConnection(host, int(port), timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_photo_api_stores_what_the_camera_saw(
    tmp_path: Path, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    kiosk = offline_box(tmp_path / "box", "box-p", mosquitto, processes)
    request = urllib.request.Request(kiosk + "/api/v1/photos", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 201
        photo = json.loads(resp.read())
    status, headers, jpeg = get(kiosk + photo["url"])
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert hashlib.sha256(jpeg).hexdigest() == photo["sha256"] and len(jpeg) == photo["size"]
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (480, 640, 3)
    on_disk = tmp_path / "box" / "state" / "photos" / f"{photo['sha256']}.jpg"
    assert on_disk.read_bytes() == jpeg
    assert not [p for p in on_disk.parent.iterdir() if p.name.endswith(".tmp")]

    status, headers, first = get(kiosk + "/api/v1/camera/preview")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    second = get(kiosk + "/api/v1/camera/preview")[2]
    assert first[:2] == b"\xff\xd8" and first != second

    status, headers, svg = get(kiosk + "/api/v1/qr?text=510104021-01-261121-0001")
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")
    assert svg.startswith(b"<svg") and b"<path" in svg
    assert get(kiosk + "/api/v1/qr?text=" + "9" * 201)[0] == 400
    assert get(kiosk + "/receipt/510104021-01-261121-0001")[0] == 200
    assert get(kiosk + "/receipt/not-a-case")[0] == 404
    assert get(kiosk + "/static/edge.toml")[0] == 404
    assert get(kiosk + "/api/v1/photos/" + "0" * 64)[0] == 404

    for path in ("/api/v1/camera/preview", photo["url"], "/api/v1/qr?text=x"):
        status, _, body = get(kiosk + path, source="127.0.0.2")
        assert status == 401 and "clerk" in json.loads(body)["error"], path


def test_a_submit_whose_answer_was_lost_is_registered_once(
    tmp_path: Path, browser: Browser, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    """The box registers the case but the page never hears back (the answer is lost): the
    clerk taps 确认提交 again and gets the same case, not a second one."""
    kiosk = offline_box(tmp_path / "box", "box-retry", mosquitto, processes)
    page = browser.new_page(viewport=VIEWPORT)
    lost: list[dict[str, Any]] = []

    def lose_the_first_answer(route: Route) -> None:
        if route.request.method == "POST" and not lost:
            lost.append(route.fetch().json())  # the box registers it...
            route.abort("connectionreset")  # ...and the page hears nothing
        else:
            route.continue_()

    page.route("**/api/v1/cases", lose_the_first_answer)
    page.goto(kiosk + "/")
    page.click("#next")
    fill_person(page, id_number(5))
    page.click("#next")
    fill_matter(page, "claim", "某建筑公司", "请求解决拖欠工资问题。")
    page.click("#next")  # 跳过 photos
    step_is(page, "review")
    page.click("#next")
    expect(page.locator("#banner")).to_contain_text("提交没有成功")
    step_is(page, "review")
    assert len(lost) == 1 and "case_no" in lost[0], lost
    page.click("#next")
    step_is(page, "done")
    expect(page.locator("#case-no")).to_have_text(lost[0]["case_no"])
    expect(page.locator("#query-code")).to_have_text(lost[0]["query_code"])
    page.close()
    with sqlite3.connect(tmp_path / "box" / "state" / "edge.db") as db:
        assert db.execute("SELECT case_no FROM cases").fetchall() == [(lost[0]["case_no"],)]
        assert (
            db.execute("SELECT count(*) FROM outbox WHERE type = 'case.registered'").fetchone()[0]
            == 1
        )


def test_a_petitioner_who_walks_away_leaves_nothing_on_the_screen(
    tmp_path: Path, browser: Browser, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    """After kiosk_idle_seconds without a touch the kiosk asks whether the petitioner is still
    there; a tap keeps everything, silence clears it for the next person (a receipt too)."""
    kiosk = offline_box(tmp_path / "box", "box-idle", mosquitto, processes, kiosk_idle_seconds=4)
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(kiosk + "/")
    step_is(page, "consent")
    page.wait_for_timeout(6000)  # an untouched first page has nothing to clear: no question
    expect(page.locator("#idle")).to_be_hidden()
    page.click("#next")
    fill_person(page, id_number(5))
    question = page.locator("#idle")
    expect(question).to_be_visible(timeout=8000)
    expect(question).to_contain_text("您还在吗？")
    expect(page.locator("#idle-text")).to_contain_text("秒后将清空本页填写的信息")
    shot(page, tmp_path, "idle-question")
    page.click("#idle-stay")
    expect(question).to_be_hidden()
    expect(page.locator("#name")).to_have_value("王秀英")  # still there: nothing was lost
    step_is(page, "person")

    expect(question).to_be_visible(timeout=8000)  # and now nobody answers
    step_is(page, "consent")  # within the grace (4 s here, 30 s on a box's default)
    expect(question).to_be_hidden()
    for field in ("name", "id_number", "phone", "address"):
        expect(page.locator(f"#{field}")).to_have_value("")

    page.click("#next")  # a whole registration, then the petitioner leaves the receipt
    fill_person(page, id_number(6))
    page.click("#next")
    fill_matter(page, "suggestion", "锦江区城管局", "夜间施工噪音扰民。")
    page.click("#next")  # no photos
    page.click("#next")  # submit
    step_is(page, "done")
    expect(page.locator("#query-code")).not_to_be_empty()
    page.wait_for_timeout(3000)
    step_is(page, "done")  # an answered question is not asked again at once
    expect(question).to_be_visible(timeout=8000)
    page.click("#idle-clear")  # or finish at once
    step_is(page, "consent")
    expect(page.locator("#query-code")).to_be_empty()
