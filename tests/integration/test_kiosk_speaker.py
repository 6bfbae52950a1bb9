"""The kiosk page plays the official's voice: a real box (``xfv edge run``) in a live call
through the real hub relay and signaling, an official (an aiortc peer) publishing a pure tone,
and the box's kiosk page in headless Chromium.

- A browser with Chromium's default autoplay policy makes the AudioContext at load, but it
  stays suspended until the clerk taps 视频接访 (a user gesture); then it runs and plays the
  official's tone: the AudioWorklet's counters grow and an AnalyserNode after the volume
  control finds the tone's frequency. The volume buttons turn it down to silence and back.
- A browser run with ``--autoplay-policy=no-user-gesture-required`` (what docs/kiosk-live.md
  asks of the kiosk), opened in the middle of the call as after a reload, plays at once.

Headless Chromium renders audio without a sound card or any fake-output flag: the context's
clock advances and the analyser sees the samples (checked here through ``currentTime``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

from contracts import signaling as sig
from tests.integration.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.broker import Mosquitto, free_port
from tests.support.events import FORM, id_number
from tests.support.live import TOWNSHIP, LiveStack
from tests.support.livepeer import LivePeer
from tests.support.procs import XfvProcess, http_json, start_edge, wait_until

NODE = "box-k"
"""A box user the test broker knows (tests/support/broker.py `BOX_USERS`)."""
TONE_HZ = 697.0
"""The official's tone; the box's own synthetic microphone sends 440 Hz."""
AUTOPLAY = "--autoplay-policy=no-user-gesture-required"
SLOW = 60.0
"""Seconds for a process or the link to come up on a busy 2-core machine."""
MS = SLOW * 1000


async def poll(what: str, probe: Any, within: float = SLOW) -> Any:
    """``wait_until`` off the event loop, so the aiortc peer keeps running meanwhile."""
    return await asyncio.to_thread(wait_until, what, probe, within, 0.1)


def register(kiosk: str) -> dict[str, Any] | None:
    """A case registered at the kiosk's API: its receipt (None while the box starts)."""
    try:
        status, receipt = http_json(
            kiosk + "/api/v1/cases", body={**FORM, "id_number": id_number(6)}
        )
    except OSError:
        return None
    assert status == 201, receipt
    return dict(receipt)


def signaling_up(kiosk: str) -> bool:
    status, state = http_json(kiosk + "/api/v1/live/state")
    assert status == 200, state
    return bool(state["available"])


async def test_the_kiosk_page_plays_the_official_voice(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    stack = LiveStack(tmp_path / "live", mosquitto).start()
    port = free_port()
    kiosk = f"http://127.0.0.1:{port}"
    box: XfvProcess | None = None
    try:
        box = start_edge(
            tmp_path / NODE, NODE, TOWNSHIP, mosquitto, kiosk={"host": "127.0.0.1", "port": port}
        )
        receipt = await poll("the kiosk registers a case", lambda: register(kiosk))
        await poll("the box has its signaling link", lambda: signaling_up(kiosk))
        token = stack.user_token("zhang")
        async with (
            async_playwright() as pw,
            LivePeer(stack.signaling_url, token, "zhang", tone_hz=TONE_HZ) as official,
        ):
            tapping = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await tapping.new_page()
                session_id = await _tap_and_hear(page, kiosk, receipt, official)
                await _volume(page)
            finally:
                await tapping.close()

            autoplay = await pw.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, AUTOPLAY]
            )
            try:
                await _reloaded_page_plays(autoplay, kiosk)
            finally:
                await autoplay.close()
            await official.end(session_id)
    finally:
        if box is not None:
            box.stop()
        stack.stop()


async def _tap_and_hear(page: Page, kiosk: str, receipt: dict[str, Any], official: LivePeer) -> str:
    """The receipt screen; the clerk's tap on 视频接访 lets the page's audio run; the official
    accepts and the page plays its tone. Returns the session id."""
    await page.goto(kiosk + "/")
    await page.wait_for_function("window.xfvSpeaker.state === 'suspended'", timeout=MS)
    await page.evaluate("(r) => { state.receipt = r; go('done'); }", receipt)
    await page.wait_for_function("!document.querySelector('#live-request').disabled", timeout=MS)
    await asyncio.sleep(0.5)
    assert await speaker(page, "state") == "suspended", "no audio before a user gesture"

    await page.click("#live-request")  # the clerk's tap
    await page.wait_for_function("window.xfvSpeaker.state === 'running'", timeout=MS)
    await page.wait_for_selector('body[data-live="waiting"]', timeout=MS)
    await _labels(page)
    queue = await official.wait_frame(
        sig.Queue, lambda q: any(e.case_no == receipt["case_no"] for e in q.entries)
    )
    [entry] = [e for e in queue.entries if e.case_no == receipt["case_no"]]
    await official.send(sig.Accept(request_id=entry.request_id))
    started = await official.started()
    await official.publish(started.session_id)
    await page.wait_for_selector('body[data-live="in_call"]', timeout=MS)
    await _hears_the_tone(page)
    return started.session_id


async def _hears_the_tone(page: Page) -> None:
    """The worklet plays the stream (a second of it and more) and what leaves the volume
    control is the official's tone."""
    await page.wait_for_function("window.xfvSpeaker.played > 48000", timeout=MS)
    before = await speaker(page, "played")
    clock = await page.evaluate("window.xfvSpeaker.clock()")
    await asyncio.sleep(1.0)
    assert await speaker(page, "played") - before > 24000, "the worklet stopped playing"
    assert await page.evaluate("window.xfvSpeaker.clock()") - clock > 0.5, "the context stalled"
    hz = await page.evaluate("window.xfvSpeaker.dominantHz()")
    assert abs(hz - TONE_HZ) <= 4.0, hz
    assert await page.evaluate("window.xfvSpeaker.level()") > 0.02
    assert await speaker(page, "rms") > 0.05
    assert await speaker(page, "received") >= 50


async def _volume(page: Page) -> None:
    """音量− down to 0 silences the speaker; 音量+ brings the tone back."""
    assert await page.text_content("#volume-level") == "音量 7"
    for _ in range(7):
        await page.click("#volume-down")
    assert await page.text_content("#volume-level") == "音量 0"
    assert await page.is_disabled("#volume-down")
    await page.wait_for_function("window.xfvSpeaker.level() < 0.001", timeout=MS)
    assert await speaker(page, "rms") > 0.05, "the stream itself goes on"
    for _ in range(9):
        await page.click("#volume-up")
    assert await page.text_content("#volume-level") == "音量 9"
    await page.wait_for_function("window.xfvSpeaker.level() > 0.05", timeout=MS)
    assert await page.evaluate("localStorage.getItem('xfv-volume')") == "9"


async def _labels(page: Page) -> None:
    """The volume buttons speak Chinese first, English after the language button."""
    assert await page.text_content("#volume-up") == "音量+"
    await page.click("#lang")
    assert await page.text_content("#volume-up") == "Volume +"
    assert await page.text_content("#volume-down") == "Volume −"
    await page.click("#lang")
    assert await page.text_content("#volume-down") == "音量−"


async def _reloaded_page_plays(browser: Browser, kiosk: str) -> None:
    """A page opened mid-call (a reload) in the autoplay-enabled kiosk browser: no tap, yet
    the context runs and the tone plays (at the default volume: a new browser profile)."""
    page = await browser.new_page()
    await page.goto(kiosk + "/")
    await page.wait_for_function("window.xfvSpeaker.state === 'running'", timeout=MS)
    await page.wait_for_selector('body[data-live="in_call"]', timeout=MS)
    assert await page.text_content("#volume-level") == "音量 7"
    await _hears_the_tone(page)


async def speaker(page: Page, name: str) -> Any:
    return await page.evaluate("(n) => window.xfvSpeaker[n]", name)
