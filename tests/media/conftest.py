"""Media tests run real aiortc peers over UDP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from hub.media import Relay
from runtime.rtc import install_low_latency, loopback_ice


@pytest.fixture(autouse=True)
def loopback() -> Iterator[None]:
    """aioice offers only 127.0.0.1 (it leaves loopback out by default), and every receiver
    releases frames on their marker packet (process-wide once applied, as in the product)."""
    install_low_latency()
    with loopback_ice():
        yield


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    """A hub relay with the default settings, closed after the test."""
    async with Relay() as r:
        yield r
