"""Where session events go: the pluggable way out of the signaling server.

The server calls ``sink.emit(event)`` synchronously at the moment something happens
(requested, cancelled, accepted, started, ended, monitor_view; the models are
``contracts.signaling.LiveEvent``) and never waits on it, so a sink must not block: hand the
event on (a queue, a buffer flushed by its own task) and return.

- ``LogSink`` (the default) logs each event as one JSON line at INFO.
- ``QueueSink`` puts events on a bounded ``asyncio.Queue`` that a consumer drains (tests).

Besides the configured sink, ``signaling.rooms.Rooms`` always hands every event to a
``RelayFeed``: the hub's relay agent receives it as an ``event`` frame and writes it to the
case timeline. While no relay is connected the feed keeps up to ``limit`` events (the oldest
are dropped, each with an error log) and sends them, in order, when a relay connects.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from typing import Protocol

from contracts.signaling import EventFrame, LiveEvent, event_json
from signaling.connection import Connection

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def emit(self, event: LiveEvent) -> None:
        """Take one event without blocking."""


class LogSink:
    """Logs every event (logger ``signaling.sink``)."""

    def emit(self, event: LiveEvent) -> None:
        log.info("live event %s", json.dumps(event_json(event), ensure_ascii=False))


class QueueSink:
    """Events on an ``asyncio.Queue``; when the consumer falls ``maxsize`` behind, an event is
    dropped and logged as an error (the server must never stall on its sink)."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self.queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize)
        self.dropped = 0

    def emit(self, event: LiveEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error(
                "event sink full (%d waiting): dropped %s", self.queue.qsize(), event_json(event)
            )

    async def get(self) -> LiveEvent:
        return await self.queue.get()

    def drain(self) -> list[LiveEvent]:
        """Every event waiting now, oldest first."""
        out: list[LiveEvent] = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out


class RelayFeed:
    """Every event to the relay's socket, kept (at most ``limit``) while no relay is connected
    and sent on ``attach``, oldest first."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.waiting: collections.deque[LiveEvent] = collections.deque()
        self.conn: Connection | None = None
        self.sent = 0
        self.dropped = 0

    def emit(self, event: LiveEvent) -> None:
        if self.conn is not None and self.conn.closing is None:
            self._send(self.conn, event)
            return
        if len(self.waiting) >= self.limit:
            log.error(
                "no relay connected and %d events waiting: dropped %s",
                len(self.waiting),
                json.dumps(event_json(self.waiting.popleft()), ensure_ascii=False),
            )
            self.dropped += 1
        self.waiting.append(event)

    def attach(self, conn: Connection) -> None:
        """``conn`` is the relay now: send it what waited."""
        self.conn = conn
        if self.waiting:
            log.info("%s: sending %d events that waited for a relay", conn.who, len(self.waiting))
        while self.waiting and conn.closing is None:
            self._send(conn, self.waiting.popleft())

    def detach(self, conn: Connection) -> None:
        if self.conn is conn:
            self.conn = None

    def _send(self, conn: Connection, event: LiveEvent) -> None:
        conn.send(EventFrame(event=event))
        self.sent += 1
