"""The live console in a real Chromium (fake camera and microphone) against real signaling and
hub processes with the relay; the box is an aiortc ``LivePeer`` over real UDP on 127.0.0.1.

An official sees the waiting box in the queue, accepts, and both sides decode each other's
video: the browser's getStats ``framesDecoded`` and the frames the box decodes. A monitor's
wall shows the live session and plays the box's video, the participants are told nothing, and
the session page lists the view.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable

from playwright.sync_api import Browser, Page, expect

from contracts import signaling as sig
from contracts.cases import Category
from hub.pii import PiiVault
from hub.store.migrations import migrations
from hub.workflow.seed import generate, insert_cases
from runtime.sqlite import open_database
from tests.integration.conftest import PeerLoop
from tests.support.console import console_sign_in
from tests.support.live import PASSWORD, TOWNSHIP, LiveStack, case_no
from tests.support.livepeer import LivePeer
from tests.support.procs import Hub, http_json

WAIT_MS = 20_000
"""Milliseconds a page gets for what must happen (generous: the machine is shared)."""


def sign_in(browser: Browser, stack: LiveStack, user: str) -> Page:
    """A fresh browser context signed in to the console as ``user``."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.on("console", lambda m: print(f"[{user} console] {m.type}: {m.text}"))
    page.on("pageerror", lambda e: print(f"[{user} pageerror] {e}"))
    console_sign_in(page, stack.hub.base, user, PASSWORD)
    return page


def register_case(stack: LiveStack, number: str) -> str:
    """A registered 申诉求决 case ``number`` (of ``TOWNSHIP``) in the hub, other fields
    generated."""
    db = open_database(stack.hub.database, migrations)
    try:
        [row] = generate(
            PiiVault(stack.hub.pii_key()), [TOWNSHIP], 1, start=dt.datetime.now(dt.UTC), days=1
        )
        fields = list(row)
        fields[0], fields[10] = number, Category.CLAIM.value  # CASE_COLUMNS order
        insert_cases(db, iter([tuple(fields)]))
    finally:
        db.close()
    return number


def decoded(peer: LivePeer, session_id: str, source: str) -> int:
    """Frames ``peer`` decoded from ``source`` (stamped or not: a browser's camera is not)."""
    sub = peer.subscriptions.get((session_id, source))
    return len(sub.stamps) + sub.unreadable if sub else 0


def wait_for(what: str, probe: Callable[[], bool], timeout: float = WAIT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def accept_from_queue(page: Page, request_id: str, case: str) -> str:
    """On /live: the waiting box's row (its waiting time ticking), accepted; the session id."""
    row = page.locator(f'tr[data-request="{request_id}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    for text in (case, "盐市口街道", "申诉求决", "夜间施工"):
        expect(row).to_contain_text(text)
    waited = row.locator("td.waited")
    expect(waited).not_to_have_text(waited.inner_text(), timeout=5000)
    row.locator("button[data-accept]").click()
    page.wait_for_url(re.compile(r"/live/call/[A-Za-z0-9_-]+$"), timeout=WAIT_MS)
    return page.url.rsplit("/", 1)[1]


def save_note(page: Page, stack: LiveStack, case: str) -> None:
    """The case panel shows the registered fields; a note is saved to the case's timeline."""
    expect(page.locator("#case-no")).to_have_text(case)
    expect(page.locator('#case-fields [data-field="category"]')).to_have_text("申诉求决")
    page.fill("#note", "信访人反映夜间施工噪音，已记录")
    page.click("#save-note")
    expect(page.locator("#note-status")).to_have_text("已保存", timeout=WAIT_MS)
    status, body = http_json(f"{stack.hub.base}/api/v1/cases/{case}", stack.login("zhang"))
    assert status == 200
    assert "夜间施工噪音，已记录" in str(body["timeline"]), body["timeline"]


def test_an_official_accepts_a_waiting_box_and_both_decode_video(
    live_stack: LiveStack, live_browser: Browser, peers: PeerLoop
) -> None:
    stack = live_stack
    case = register_case(stack, case_no())
    box = LivePeer(stack.signaling_url, stack.box_token("box-a"), "box-a", shade=60)
    peers.run(box.connect())
    try:
        summary = "小区噪音扰民，夜间施工"
        request_id = peers.run(box.request_reception(case, summary, Category.CLAIM))
        page = sign_in(live_browser, stack, "zhang")
        page.goto(stack.hub.base + "/live")
        session = accept_from_queue(page, request_id, case)
        started = peers.run(box.started())
        assert started.session_id == session
        assert {p.part: p.sub for p in started.peers} == {"box": "box-a", "official": "zhang"}

        peers.run(box.publish(session))
        peers.run(box.subscribe(session, source="zhang"))
        page.wait_for_function(
            "Number(document.querySelector('#quality').dataset.framesDecoded) > 15",
            timeout=WAIT_MS,
        )
        expect(page.locator("#quality")).to_have_attribute("data-codec", re.compile("H264", re.I))
        expect(page.locator("#remote-status")).to_be_hidden()
        expect(page.locator("#q-rtt")).to_have_text(re.compile(r"\d+ ms"))
        width = page.evaluate("document.getElementById('remote').videoWidth")
        assert width == 640, f"the box's picture is {width} px wide in the browser"
        wait_for("the box decoding the official", lambda: decoded(box, session, "zhang") > 15)

        # a reload rejoins within the grace: the page resumes the session, publishes and
        # subscribes again, and the box keeps receiving without doing anything
        seen = decoded(box, session, "zhang")
        page.reload()
        page.wait_for_function(
            "Number(document.querySelector('#quality').dataset.framesDecoded) > 5",
            timeout=WAIT_MS,
        )
        wait_for("the box decoding again", lambda: decoded(box, session, "zhang") > seen + 15)
        assert len(box.frames_of(sig.SessionEnded)) == 0

        save_note(page, stack, case)
        page.click("#mute")
        assert page.evaluate("page.local.getAudioTracks()[0].enabled") is False
        page.click("#camera")
        assert page.evaluate("page.local.getVideoTracks()[0].enabled") is False

        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#end")
        ended = peers.run(box.wait_frame(sig.SessionEnded, lambda e: e.session_id == session))
        assert ended.by == "zhang" and ended.reason == "completed"
        expect(page.locator("#ended")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#call")).to_have_attribute("data-state", "ended")
        page.context.close()
    finally:
        peers.run(box.close())


def test_a_monitor_watches_from_the_wall_unseen_and_the_session_lists_the_view(
    live_stack: LiveStack, live_browser: Browser, peers: PeerLoop
) -> None:
    stack = live_stack
    box = LivePeer(stack.signaling_url, stack.box_token("box-a"), "box-a", shade=60)
    official = LivePeer(stack.signaling_url, stack.user_token("zhang"), "zhang", shade=120)
    for peer in (box, official):
        peers.run(peer.connect())
    try:
        request_id = peers.run(box.request_reception(case_no()))
        session = peers.run(official.accept(request_id)).session_id
        peers.run(box.started())
        peers.run(box.publish(session))
        peers.run(official.publish(session))
        peers.run(official.subscribe(session, source="box-a"))
        peers.run(box.subscribe(session, source="zhang"))
        wait_for("the call's media", lambda: decoded(official, session, "box-a") > 5)
        before = {p.name: len(p.frames) for p in (box, official)}

        page = sign_in(live_browser, stack, "li_monitor")
        page.goto(stack.hub.base + "/wall")
        tile = page.locator(f'.video-tile[data-session="{session}"]')
        expect(tile).to_be_visible(timeout=WAIT_MS)
        expect(tile).to_contain_text("盐市口街道")
        opened = time.monotonic()
        page.wait_for_function(
            f"""Number(document.querySelector('.video-tile[data-session="{session}"]')
                .dataset.framesDecoded) > 0""",
            timeout=WAIT_MS,
        )
        first_frame_s = time.monotonic() - opened
        print(f"wall: first decoded frame {first_frame_s:.2f} s after the tile appeared")
        expect(tile).to_have_attribute("data-state", "connected")
        expect(tile.locator(".light")).to_have_class(re.compile("green"))

        # enlarged: both sides, the official's video through a second watch-only downstream
        tile.click()
        focus = page.locator("#focus")
        expect(focus).to_be_visible()
        expect(focus).to_have_attribute("data-official", "connected", timeout=WAIT_MS)
        page.click("#focus-close")
        expect(focus).to_be_hidden()

        # the participants were told nothing: no frame reached them since the monitor came
        time.sleep(1.0)
        for peer in (box, official):
            new = peer.frames[before[peer.name] :]
            assert not new, f"{peer.name} was sent {new} while a monitor watched"
        assert decoded(box, session, "zhang") > 5 and decoded(official, session, "box-a") > 5

        assert first_frame_s < 10, f"the wall's first frame took {first_frame_s:.1f} s"

        # the session ends: its tile leaves the wall, and the view (now over) is listed
        peers.run(official.end(session))
        expect(tile).to_have_count(0, timeout=WAIT_MS)
        expect(page.locator("#empty")).to_be_visible()
        page.goto(f"{stack.hub.base}/live/sessions/{session}")
        view = page.locator('#views tr[data-monitor="li_monitor"]').first
        expect(view).to_be_visible(timeout=WAIT_MS)
        expect(view.locator("td").nth(2)).not_to_have_text("监看中")
        expect(page.locator('[data-field="case_no"]')).to_have_text(case_no())
        expect(page.locator("#session")).to_have_attribute("data-live", "false")
        page.context.close()
    finally:
        for peer in (box, official):
            peers.run(peer.close())


def test_each_role_is_shown_and_let_into_only_its_live_pages(
    live_stack: LiveStack, live_browser: Browser
) -> None:
    for user, mine, other in (("zhang", "/live", "/wall"), ("li_monitor", "/wall", "/live")):
        page = sign_in(live_browser, live_stack, user)
        expect(page.locator(f'header a[href="{mine}"]')).to_be_visible(timeout=WAIT_MS)
        expect(page.locator(f'header a[href="{other}"]')).to_be_hidden()
        page.goto(live_stack.hub.base + other)
        expect(page.locator("main.refused h1")).to_have_text("您的角色不能使用此页面")
        page.goto(live_stack.hub.base + mine)
        expect(page.locator(f'header a[href="{mine}"]')).to_be_visible(timeout=WAIT_MS)
        page.context.close()


def test_without_live_reception_no_live_link_is_shown(hub: Hub, live_browser: Browser) -> None:
    hub.add_user("zhou", "official", "510104", "zhou-password")
    status, me = http_json(hub.base + "/api/v1/me", hub.login("zhou", "zhou-password"))
    assert status == 200 and me["live_queue"] is False and me["live_wall"] is False
    page = live_browser.new_page()
    console_sign_in(page, hub.base, "zhou", "zhou-password")
    expect(page.locator("#who")).to_contain_text("zhou", timeout=WAIT_MS)
    expect(page.locator('header a[href="/live"]')).to_be_hidden()
    expect(page.locator('header a[href="/wall"]')).to_be_hidden()
    page.close()
