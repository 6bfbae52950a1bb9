"""Fixtures of the box's live tests: a signaling server and the hub relay on 127.0.0.1 (with
a minimal relay agent), and the box's ``LiveService`` on a real store with one registered case.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from contracts.access import Audience, Role, mint_token
from contracts.cases import validate_case_form
from edge.live.config import LiveConfig
from edge.live.service import LiveService
from edge.media.config import MediaConfig
from edge.media.recorder import RecordedFile
from edge.store.db import EdgeStore
from hub.media.agent import RelayAgent
from hub.media.relay import Relay
from runtime.rtc import install_low_latency, loopback_ice
from tests.edge.live.official import Official
from tests.media.peers import wait_for
from tests.signaling.conftest import running_server
from tests.support.events import FORM, id_number

TOWNSHIP = "510104021"
COUNTY = "510104"
NODE = "box-live-1"
WAIT = 15.0


class Sink:
    """Stands in for ``EdgeStore.add_recording``: remembers what it was given."""

    def __init__(self) -> None:
        self.added: list[tuple[str, str, RecordedFile]] = []

    async def add_recording(
        self,
        case_no: str,
        session_id: str,
        rec: RecordedFile,
        *,
        started_at: dt.datetime | None = None,
    ) -> None:
        self.added.append((case_no, session_id, rec))


@dataclass
class Stack:
    url: str
    key: bytes
    relay: Relay
    agent: RelayAgent
    service: LiveService
    sink: Sink
    case_no: str
    http: aiohttp.ClientSession

    def token(self, sub: str, role: Role, jur: str) -> str:
        return mint_token(
            self.key,
            sub=sub,
            role=role,
            jurisdiction=jur,
            audience=Audience.SIGNALING,
            ttl=dt.timedelta(minutes=5),
        )

    async def official(self, sub: str = "official-li", *, vp8_only: bool = False) -> Official:
        """An official on signaling; ``vp8_only``: its browser lacks H.264."""
        token = self.token(sub, Role.OFFICIAL, COUNTY)
        ws = await self.http.ws_connect(f"{self.url}?token={token}")
        return Official(ws, vp8_only=vp8_only)


@pytest.fixture(autouse=True)
def loopback() -> Iterator[None]:
    """aioice offers only 127.0.0.1, and receivers release frames on their marker packet."""
    install_low_latency()
    with loopback_ice():
        yield


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    media = MediaConfig(width=320, height=240, encoder="libx264", bitrate=300_000)
    async with (
        running_server(tmp_path, rejoin_grace=5.0) as server,
        Relay() as relay,
        EdgeStore(tmp_path / "edge.db", NODE) as store,
        aiohttp.ClientSession() as http,
    ):
        form = validate_case_form({**FORM, "id_number": id_number(7), "content": "房屋漏水。" * 30})
        assert not isinstance(form, dict)
        receipt = await store.register_case(form, TOWNSHIP, 1)
        sink = Sink()
        service = LiveService(
            NODE,
            store,
            sink,
            media,
            tmp_path / "recordings",
            LiveConfig(reconnect_min=0.2, answer_timeout=6.0),
        )
        async with (
            RelayAgent(relay, server.url, server.key, "51", reconnect_min=0.2) as agent,
            asyncio.TaskGroup() as tg,
        ):
            case_no = receipt.case_no
            stack = Stack(server.url, server.key, relay, agent, service, sink, case_no, http)
            service.configure(server.url, stack.token(NODE, Role.BOX, TOWNSHIP))
            service_task = tg.create_task(service.run())
            try:
                await asyncio.wait_for(agent.connected.wait(), WAIT)
                await wait_for(lambda: service.client.connected, WAIT, "the box's signaling")
                yield stack
            finally:
                service_task.cancel()
