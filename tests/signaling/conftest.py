"""A real signaling server on 127.0.0.1 (port picked by the OS) and real WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from contracts import signaling as sig
from contracts.access import Audience, Role, mint_token
from runtime.config import HttpConfig
from signaling.config import SignalingConfig
from signaling.server import SignalingServer
from signaling.sink import QueueSink

F = TypeVar("F")
WAIT = 10.0
"""Seconds a test waits for a frame that must come (generous: the machine is shared)."""

TOWNSHIP = "510104021"  # 盐市口街道, in county 510104 (锦江区)
OTHER_COUNTY = "510105"  # 青羊区
CASE_NO = f"{TOWNSHIP}-01-261121-0007"


@dataclass
class Running:
    server: SignalingServer
    sink: QueueSink
    key: bytes
    url: str

    def token(
        self,
        sub: str,
        role: Role,
        jur: str,
        *,
        audience: Audience = Audience.SIGNALING,
        ttl: dt.timedelta = dt.timedelta(minutes=5),
        now: dt.datetime | None = None,
        session: str | None = None,
    ) -> str:
        return mint_token(
            self.key,
            sub=sub,
            role=role,
            jurisdiction=jur,
            audience=audience,
            ttl=ttl,
            now=now,
            session=session,
        )

    def events(self) -> list[sig.LiveEvent]:
        return self.sink.drain()


class Client:
    """One WebSocket to the server, reading parsed frames in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: sig.Frame | dict[str, Any] | str) -> None:
        if isinstance(frame, str):
            await self.ws.send_str(frame)
        elif isinstance(frame, dict):
            await self.ws.send_str(json.dumps(frame))
        else:
            await self.ws.send_str(frame.dump())

    async def next(self) -> sig.Frame:
        msg = await self.ws.receive(timeout=WAIT)
        assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a frame, got {msg.type!r} {msg}"
        return sig.parse_frame(msg.data)

    async def expect(self, kind: type[F]) -> F:
        """The next frame, which must be a ``kind``."""
        frame = await self.next()
        assert isinstance(frame, kind), f"expected {kind.__name__}, got {frame!r}"
        return frame

    async def until(self, kind: type[F], check: Callable[[F], bool] = lambda f: True) -> F:
        """Skip frames until a ``kind`` passing ``check``."""
        while True:
            frame = await self.next()
            if isinstance(frame, kind) and check(frame):
                return frame

    async def closed(self) -> tuple[int, str]:
        """Wait for the server to close; (close code, close message)."""
        msg = await self.ws.receive(timeout=WAIT)
        while msg.type is aiohttp.WSMsgType.TEXT:
            msg = await self.ws.receive(timeout=WAIT)
        assert msg.type is aiohttp.WSMsgType.CLOSE, msg
        return int(msg.data), str(msg.extra or "")

    async def close(self) -> None:
        await self.ws.close()


Connect = Callable[..., Awaitable[Client]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@contextlib.asynccontextmanager
async def running_server(
    tmp_path: Path, key: str = "ab" * 32, **config: Any
) -> AsyncIterator[Running]:
    """A signaling server whose token key (``key``, as the hub writes it) is in a file."""
    key_file = tmp_path / f"signaling-{uuid.uuid4().hex[:8]}.key"
    key_file.write_text(key + "\n")
    sink = QueueSink()
    server = SignalingServer(
        SignalingConfig(
            http=HttpConfig(host="127.0.0.1", port=0), token_secret_file=str(key_file), **config
        ),
        sink,
    )
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.ready.wait(), WAIT)
        yield Running(server, sink, key.encode(), f"ws://127.0.0.1:{server.port}/ws")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """A server whose rejoin grace (3 s) is long enough for a reconnect under load."""
    async with running_server(tmp_path, rejoin_grace=3.0) as r:
        yield r


@pytest.fixture
def connect(running: Running, http: aiohttp.ClientSession) -> Connect:
    return client_factory(running, http)


def client_factory(running: Running, http: aiohttp.ClientSession) -> Connect:
    async def connect(
        sub: str, role: Role, jur: str, *, via_hello: bool = False, welcome: bool = True
    ) -> Client:
        """Connect with a fresh token; by default read the ``welcome``."""
        token = running.token(sub, role, jur)
        url = running.url if via_hello else f"{running.url}?token={token}"
        client = Client(await http.ws_connect(url))
        if via_hello:
            await client.send(sig.Hello(token=token))
        if welcome:
            w = await client.expect(sig.Welcome)
            assert w.you.sub == sub
        return client

    return connect
