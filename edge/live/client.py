"""The box's WebSocket client of the signaling server (``contracts.signaling``).

It connects with the SIGNALING token of the hub's latest config command (``configure(url,
token)``; the token goes in a ``hello`` frame, never in the URL), hands every frame it reads to
``on_frame`` in order, and reconnects whenever the socket drops: after ``reconnect_min``, then
backing off up to ``reconnect_max`` while connecting fails. The server keeps the box's waiting
request or session for its rejoin grace and says so in ``welcome.resumed``, so reconnecting
quickly is what rejoining is. A refused token (close code 4401) is retried only once the hub
sends a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from contracts import signaling as sig
from edge.live.errors import NotConnected
from runtime.logs import QuietLogger

log = logging.getLogger(__name__)
quiet = QuietLogger(log)

FrameHandler = Callable[[sig.Frame], Awaitable[None]]
StateHandler = Callable[[bool], None]


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str


class SignalingClient:
    """Keeps one signaling socket open while credentials are known; ``run`` until cancelled."""

    def __init__(
        self,
        name: str,
        on_frame: FrameHandler,
        *,
        on_state: StateHandler | None = None,
        reconnect_min: float = 0.5,
        reconnect_max: float = 5.0,
        heartbeat: float = 10.0,
    ) -> None:
        self.name = name
        self.on_frame = on_frame
        self.on_state = on_state
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.heartbeat = heartbeat
        self.credentials: Credentials | None = None
        self.connected = False
        self.connects = 0
        self.last_error: str | None = None
        self._changed = asyncio.Event()
        self._refused: Credentials | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closer: asyncio.Future[bool] | None = None

    def configure(self, url: str, token: str) -> None:
        """The hub's latest signaling URL and token; a new URL reconnects, a new token is used
        at the next (re)connect."""
        new = Credentials(url, token)
        if new == self.credentials:
            return
        old, self.credentials = self.credentials, new
        log.info("%s: signaling at %s", self.name, url)
        self._changed.set()
        if old is not None and old.url != url:
            self.drop()

    def drop(self) -> None:
        """Close the current socket (if any); ``run`` connects again at once."""
        ws = self._ws
        if ws is not None and not ws.closed and self._closer is None:
            self._closer = asyncio.ensure_future(ws.close())  # awaited by run()

    async def send(self, frame: sig.Frame) -> None:
        """Send one frame; raises ``NotConnected`` while the socket is down."""
        ws = self._ws
        if ws is None or ws.closed or not self.connected:
            raise NotConnected(f"{self.name}: no signaling connection to send {frame.type!r}")
        try:
            await ws.send_str(frame.dump())
        except (ConnectionError, RuntimeError) as exc:
            raise NotConnected(f"{self.name}: sending {frame.type!r} failed: {exc}") from exc

    async def run(self) -> None:
        delay = self.reconnect_min
        async with aiohttp.ClientSession() as http:
            while True:
                creds = await self._usable_credentials()
                try:
                    welcomed = await self._session(http, creds)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    welcomed = False
                    self.last_error = f"cannot connect to {creds.url}: {exc}"
                    quiet.warning("connect", "%s: %s", self.name, self.last_error)
                finally:
                    self._set_connected(False)
                    self._ws = None
                    closer, self._closer = self._closer, None
                    if closer is not None:
                        await asyncio.gather(closer, return_exceptions=True)
                if welcomed:  # a drop: come back soon, the rejoin grace is running
                    delay = self.reconnect_min
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), delay)
                delay = min(delay * 2, self.reconnect_max)

    async def _usable_credentials(self) -> Credentials:
        while self.credentials is None or self.credentials == self._refused:
            self._changed.clear()
            await self._changed.wait()
        return self.credentials

    async def _session(self, http: aiohttp.ClientSession, creds: Credentials) -> bool:
        """One socket from connect to close; whether the server welcomed it."""
        welcomed = False
        async with http.ws_connect(creds.url, heartbeat=self.heartbeat) as ws:
            self._ws = ws
            await ws.send_str(sig.Hello(token=creds.token).dump())
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    frame = sig.parse_frame(msg.data)
                except sig.FrameError as exc:
                    quiet.warning("frame", "%s: bad frame from signaling: %s", self.name, exc)
                    continue
                if isinstance(frame, sig.Welcome):
                    welcomed = True
                    self.connects += 1
                    self.last_error = None
                    self._set_connected(True)
                    log.info(
                        "%s: signaling connected%s",
                        self.name,
                        f" (resumed session {frame.session_id})" if frame.resumed else "",
                    )
                if isinstance(frame, sig.Error) and frame.code == "invalid_token":
                    self._refused = creds
                    self.last_error = f"signaling refused the token: {frame.message}"
                    log.warning("%s: %s", self.name, self.last_error)
                try:
                    await self.on_frame(frame)
                except Exception:
                    log.exception("%s: handling %s failed", self.name, frame.type)
            code = ws.close_code
        if code == sig.CLOSE_INVALID_TOKEN:
            self._refused = creds
        log.info("%s: signaling socket closed (code %s)", self.name, code)
        return welcomed

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        if self.on_state is not None:
            try:
                self.on_state(connected)
            except Exception:
                log.exception("%s: signaling state handler failed", self.name)
