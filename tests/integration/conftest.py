"""Fixtures of the integration tests: a real browser, a hub set up for the case workflow."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.broker import Mosquitto
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
