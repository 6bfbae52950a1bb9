"""A real box (``xfv edge run``) in a live reception through the real hub relay and signaling:
the clerk asks for an official from the kiosk API, the kiosk page (headless Chromium) shows the
queue position and then the official full screen with the self view, an official (an aiortc
peer) accepts from the queue, both sides decode each other; then the box is killed with
SIGKILL mid-call. After
its restart the crashed recording is recovered, sealed into the chain, uploaded, verified by
the hub and its duration is within 2 s of the time the call ran."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from playwright.async_api import Page, async_playwright

from contracts import signaling as sig
from tests.integration.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.broker import Mosquitto, free_port
from tests.support.events import FORM, id_number
from tests.support.live import TOWNSHIP, LiveStack
from tests.support.livepeer import LivePeer
from tests.support.procs import XfvProcess, http_json, start_edge, wait_until

SLOW = 60.0
"""Seconds for a process or the link to come up on a busy 2-core machine."""
NODE = "box-l"


async def poll(what: str, probe: Any, within: float = SLOW) -> Any:
    """``wait_until`` off the event loop, so the aiortc peers keep running meanwhile."""
    return await asyncio.to_thread(wait_until, what, probe, within, 0.1)


def live_state(kiosk: str) -> dict[str, Any]:
    status, state = http_json(kiosk + "/api/v1/live/state")
    assert status == 200, state
    return dict(state)


async def test_a_box_calls_an_official_and_its_recording_survives_kill_9(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    stack = LiveStack(tmp_path / "live", mosquitto).start()
    boxes: list[XfvProcess] = []
    try:
        case_no, session_id, elapsed = await _call_and_crash(tmp_path, stack, mosquitto, boxes)
        await _recovered(stack, case_no, session_id, elapsed)
    finally:
        for box in boxes:
            box.stop()
        stack.stop()


async def _call_and_crash(
    tmp_path: Path, stack: LiveStack, mosquitto: Mosquitto, boxes: list[XfvProcess]
) -> tuple[str, str, float]:
    """The call, up to the box's SIGKILL and restart: (case_no, session_id, seconds the call
    ran)."""
    port = free_port()
    kiosk = f"http://127.0.0.1:{port}"

    def start_box() -> None:
        boxes.append(
            start_edge(
                tmp_path / NODE,
                NODE,
                TOWNSHIP,
                mosquitto,
                kiosk={"host": "127.0.0.1", "port": port},
            )
        )

    start_box()
    status, receipt = await poll(
        "the kiosk registers a case",
        lambda: _register(kiosk),
    )
    case_no = receipt["case_no"]
    await poll("the box has its signaling link", lambda: live_state(kiosk)["available"])

    official_token = stack.user_token("zhang")
    async with (
        async_playwright() as pw,
        LivePeer(stack.signaling_url, official_token, "zhang") as official,
    ):
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        await page.goto(kiosk + "/")
        status, state = http_json(kiosk + "/api/v1/live/request", body={"case_no": case_no})
        assert status == 200 and state["state"] == "waiting", state
        queue = await official.wait_frame(
            sig.Queue, lambda q: any(e.case_no == case_no for e in q.entries)
        )
        [entry] = [e for e in queue.entries if e.case_no == case_no]
        assert entry.node == NODE and entry.township == TOWNSHIP
        await poll("the kiosk shows position 1", lambda: live_state(kiosk)["position"] == 1)
        await page.wait_for_selector('body[data-live="waiting"]', timeout=SLOW * 1000)
        await expect_text(page, "#live-position", "下一位就是您，请稍候")

        await official.send(sig.Accept(request_id=entry.request_id))
        started = await official.started()
        began = time.monotonic()
        await official.publish(started.session_id)
        await official.subscribe(started.session_id)
        frames = await official.wait_frames(started.session_id, NODE, 30, within=SLOW)
        assert frames == sorted(frames), frames
        in_call = await poll(
            "the box decodes the official's frames",
            lambda: (
                (s := live_state(kiosk))["state"] == "in_call"
                and s["call"]["remote_frames"] >= 15
                and s
            ),
        )
        assert in_call["session_id"] == started.session_id and in_call["official"] == "zhang"
        assert "video receivers release frames on their marker packet" in boxes[-1].log()
        await page.wait_for_selector('body[data-live="in_call"]', timeout=SLOW * 1000)
        for view in ("#live-remote", "#live-self"):  # the official full screen, the self view
            await page.wait_for_function(
                f"document.querySelector('{view}').naturalWidth === 640", timeout=SLOW * 1000
            )
        await browser.close()

        await asyncio.sleep(3.0)
        boxes[-1].kill()
        elapsed = time.monotonic() - began
        boxes[-1].stop()
        ended = await official.wait_frame(
            sig.SessionEnded, lambda e: e.session_id == started.session_id, within=SLOW
        )
        assert ended.reason

    start_box()
    return case_no, started.session_id, elapsed


async def _recovered(stack: LiveStack, case_no: str, session_id: str, elapsed: float) -> None:
    """The crashed recording reaches the hub, verified, as long as the call ran (±2 s)."""
    token = stack.login("zhang")

    def verified() -> dict[str, Any] | None:
        status, body = http_json(f"{stack.hub.base}/api/v1/cases/{case_no}/recordings", token)
        if status != 200 or not body["recordings"]:
            return None
        [rec] = body["recordings"]
        return dict(rec) if rec["verified"] else None

    rec = await poll("the crashed recording verified at the hub", verified, within=2 * SLOW)
    assert rec["session_id"] == session_id
    assert abs(rec["duration_s"] - elapsed) <= 2.0, (rec["duration_s"], elapsed)
    status, case = http_json(f"{stack.hub.base}/api/v1/cases/{case_no}", token)
    assert status == 200
    kinds = [t["kind"] for t in case["timeline"]]
    assert "live.started" in kinds and "recording_verified" in kinds, kinds


async def expect_text(page: Page, selector: str, text: str) -> None:
    await page.wait_for_function(
        "([s, t]) => document.querySelector(s).textContent.includes(t)",
        arg=[selector, text],
        timeout=SLOW * 1000,
    )


def _register(kiosk: str) -> tuple[int, Any] | None:
    try:
        status, body = http_json(kiosk + "/api/v1/cases", body={**FORM, "id_number": id_number(5)})
    except OSError:
        return None
    assert status == 201, body
    return status, body
