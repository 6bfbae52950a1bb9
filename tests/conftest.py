"""Shared fixtures: a real Mosquitto (session), hub and box processes (per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Mosquitto, require_mosquitto
from tests.support.procs import Hub, XfvProcess


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    require_mosquitto()
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


@pytest.fixture
def hub(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Hub]:
    h = Hub(tmp_path / "hub", mosquitto).start()
    yield h
    h.stop()


@pytest.fixture
def processes() -> Iterator[list[XfvProcess]]:
    """Collects processes a test starts; every one is stopped (or killed) afterwards."""
    started: list[XfvProcess] = []
    yield started
    for p in started:
        p.stop(timeout=5)
