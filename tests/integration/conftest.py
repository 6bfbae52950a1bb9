"""Fixtures of the integration tests: a real browser, a hub set up for the case workflow."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.broker import Mosquitto
from tests.support.live import LiveStack
from tests.support.procs import Hub

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


LIVE_CHROMIUM_ARGS = [
    *CHROMIUM_ARGS,
    "--use-fake-device-for-media-stream",  # a synthetic camera and microphone
    "--use-fake-ui-for-media-stream",  # grant getUserMedia without a prompt
    "--allow-loopback-in-peer-connection",  # gather 127.0.0.1 host candidates too
    "--autoplay-policy=no-user-gesture-required",  # remote <video> plays unmuted at once
]
"""Chromium for live reception. Media to an aiortc peer on 127.0.0.1 flows without the
loopback flag as well (the browser's checks reach aiortc's 127.0.0.1 candidate and aiortc
learns a peer-reflexive one); with it the browser offers 127.0.0.1 itself, which keeps the
tests off the machine's other interfaces."""

T = TypeVar("T")


class PeerLoop:
    """An asyncio loop in a daemon thread; ``run`` a coroutine on it from the test's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="peers", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Cancel what still runs on the loop, then stop it and its thread."""

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_running():
            self.run(cancel_all(), timeout=30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def live_browser() -> Iterator[Browser]:
    """Headless Chromium with a fake camera and microphone, for the live console pages."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian's chromium is missing: `make test` installs it")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LIVE_CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def live_stack(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[LiveStack]:
    """Signaling and a hub with its relay (``tests.support.live``), with that module's users."""
    stack = LiveStack(tmp_path / "live", mosquitto).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def peers() -> Iterator[PeerLoop]:
    """An event loop in a thread for aiortc peers: Playwright's sync API owns this thread."""
    loop = PeerLoop()
    try:
        yield loop
    finally:
        loop.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian's chromium is missing: `make test` installs it")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def workflow_hub(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Hub]:
    """A hub whose deadline scan runs every 0.3 s, with a county petition office ``office``,
    a unit handler ``handler`` of unit ``jj-zjj`` (supervised by ``office``) in 510104, and an
    official ``qy`` of the next county; each user's password is ``<name>-password``."""
    hub = Hub(tmp_path / "hub", mosquitto, extra={"workflow": {"scan_interval": 0.3}}).start()
    with sqlite3.connect(hub.database) as db:
        db.execute(
            "INSERT INTO units (id, name_zh, name_en, jurisdiction, supervisor, created_at) "
            "VALUES ('jj-zjj', '锦江区住建局', 'Jinjiang Housing', '510104', 'office', '')"
        )
    for user, role, jur, unit in (
        ("office", "petition_office", "510104", None),
        ("handler", "unit", "510104", "jj-zjj"),
        ("qy", "official", "510105", None),
    ):
        hub.add_user(user, role, jur, f"{user}-password", unit=unit)
    yield hub
    hub.stop()
