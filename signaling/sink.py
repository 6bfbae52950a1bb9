"""Where session events go: the pluggable way out of the signaling server.

The server calls ``sink.emit(event)`` synchronously at the moment something happens
(requested, cancelled, accepted, started, ended, monitor_view; the models are
``contracts.signaling.LiveEvent``) and never waits on it, so a sink must not block: hand the
event on (a queue, a buffer flushed by its own task) and return.

- ``LogSink`` (the default) logs each event as one JSON line at INFO.
- ``QueueSink`` puts events on a bounded ``asyncio.Queue`` that a consumer drains, e.g. a task
  that POSTs them to the hub's case timeline (not built yet: see the live-video issue).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Protocol

from contracts.signaling import LiveEvent, event_json

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
