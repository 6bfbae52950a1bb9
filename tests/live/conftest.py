"""Live reception end to end: real signaling and hub processes, real aiortc peers on 127.0.0.1.

One stack serves a whole test module (starting one takes seconds on a busy machine); tests
keep apart by using their own box node ids and case numbers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.broker import Mosquitto
from tests.support.live import LiveStack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[LiveStack]:
    s = LiveStack(tmp_path_factory.mktemp("live"), mosquitto).start()
    try:
        yield s
    finally:
        s.stop()
