"""One authenticated WebSocket: who holds it, and its outbound frames.

Sending never awaits: ``send`` puts the frame's text on a bounded queue that ``pump`` (a task
of the socket's own handler) writes out. The rooms' state machine therefore runs without
await points between reading and changing state, and a peer that stops reading is cut off
(``CLOSE_TOO_SLOW``) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from aiohttp import web

from contracts.access import Claims
from contracts.signaling import (
    CLOSE_NORMAL,
    CLOSE_TOO_SLOW,
    Error,
    Frame,
    is_relay,
)

log = logging.getLogger(__name__)


_ids = itertools.count(1)


class Connection:
    def __init__(self, claims: Claims, outbox: int = 256) -> None:
        self.claims = claims
        self.id = next(_ids)
        self.relay = is_relay(claims)
        self._out: asyncio.Queue[str | None] = asyncio.Queue(outbox)
        self.closing: tuple[int, str] | None = None
        self.last_snapshot: str | None = None
        """The last ``queue``/``live`` snapshot sent (to send one only when it changed)."""

    @property
    def sub(self) -> str:
        return self.claims.sub

    @property
    def who(self) -> str:
        """``sub/role#id`` for log lines."""
        return f"{self.claims.sub}/{'relay' if self.relay else self.claims.role.value}#{self.id}"

    def send(self, frame: Frame) -> None:
        self.send_text(frame.dump())

    def send_text(self, text: str) -> None:
        if self.closing is not None:
            return
        try:
            self._out.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("%s: not reading (%d frames waiting); closing", self.who, self._out.qsize())
            self.close(CLOSE_TOO_SLOW, "too slow: outbound frames not read")

    def error(self, code: str, message: str, frame_type: str | None = None) -> None:
        self.send(Error(code=code, message=message, frame_type=frame_type))

    def close(self, code: int = CLOSE_NORMAL, message: str = "") -> None:
        """Close after the frames already queued (safe to call twice)."""
        if self.closing is not None:
            return
        self.closing = (code, message)
        if self._out.full():  # make room for the end marker: the peer is gone or too slow
            with contextlib.suppress(asyncio.QueueEmpty):
                self._out.get_nowait()
        self._out.put_nowait(None)

    async def pump(self, ws: web.WebSocketResponse) -> None:
        """Write queued frames until ``close``; then close the socket with its code."""
        try:
            while (text := await self._out.get()) is not None:
                await ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:  # the transport went away
            log.info("%s: send failed: %s", self.who, exc)
        code, message = self.closing or (CLOSE_NORMAL, "")
        await ws.close(code=code, message=message.encode()[:123])
