"""Where session events go: the pluggable way out of the signaling server, and the durable
outbox that carries them to the hub.

The server calls ``sink.emit(event)`` synchronously at the moment something happens
(requested, cancelled, accepted, started, ended, monitor_view; the models are
``contracts.signaling.LiveEvent``) and never waits on it, so a sink must not block: hand the
event on (a queue, a buffer flushed by its own task) and return.

- ``LogSink`` (the default) logs each event as one JSON line at INFO.
- ``QueueSink`` puts events on a bounded ``asyncio.Queue`` that a consumer drains (tests).

Besides the configured sink, ``signaling.rooms.Rooms`` always hands every event to a
``RelayFeed``, which carries it to the hub's relay agent ("Event delivery" in
``contracts.signaling``): it first commits the event to a ``signaling.outbox.EventOutbox`` (a
SQLite file in WAL mode; one ``INSERT`` transaction on the event loop, see its
``OUTBOX_SYNCHRONOUS`` for the cost) under the next sequence number, then sends it as
``event {seq}`` while fewer than ``EVENT_WINDOW`` sent events wait for their ``event_ack``. An
ack deletes every event up to its ``seq``; a relay (re)connection, or a restarted server,
sends everything not acknowledged again, oldest first.

Nothing is dropped for want of a relay: the outbox keeps every unacknowledged event (a few
hundred bytes each; losing one would lose a timeline entry or a monitor-view audit record),
logs a warning when the backlog reaches ``warn_backlog`` and again at every doubling, and
reports it in ``/health`` (``events_unacked``, ``events_waiting``). Only an event the file
cannot take (disk full, I/O error) is lost: it is logged in full as an error and counted in
``events_dropped``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import sqlite3
from typing import Protocol

from contracts.signaling import (
    EVENT_WINDOW,
    EventFrame,
    LiveEvent,
    event_json,
)
from signaling.connection import Connection
from signaling.errors import Refused
from signaling.outbox import EventOutbox

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
    """Every event to the relay's socket through the ``outbox``: stored first, sent in order,
    at most ``window`` unacknowledged at a time, sent again on every ``attach`` until acked."""

    def __init__(
        self, outbox: EventOutbox, warn_backlog: int = 10_000, window: int = EVENT_WINDOW
    ) -> None:
        self.outbox = outbox
        self.warn_backlog = warn_backlog
        self.window = window
        self.conn: Connection | None = None
        self.sent_seq = outbox.acked_seq
        """The newest event sent on ``conn`` (everything after it waits)."""
        self._in_flight: collections.deque[int] = collections.deque()
        """Numbers sent on ``conn`` and not acknowledged yet."""
        self.sent = 0
        self.acked = 0
        self.dropped = 0
        """Events the outbox could not store (each logged in full as an error)."""
        self._warned_at = 0

    @property
    def unacked(self) -> int:
        return self.outbox.backlog

    @property
    def waiting(self) -> int:
        """Stored events not sent on the current relay socket."""
        return self.outbox.backlog - len(self._in_flight)

    def emit(self, event: LiveEvent) -> None:
        caught_up = self.sent_seq == self.outbox.last_seq
        try:
            seq = self.outbox.append(event)
        except sqlite3.Error as exc:
            self.dropped += 1
            log.error(
                "could not store a session event in %s (%s): dropped %s",
                self.outbox.path,
                exc,
                json.dumps(event_json(event), ensure_ascii=False),
            )
            return
        self._check_backlog()
        conn = self.conn
        if conn is not None and caught_up and len(self._in_flight) < self.window:
            self._send(conn, seq, event)  # the usual case: no need to read it back
        else:
            self._fill()

    def attach(self, conn: Connection) -> None:
        """``conn`` is the relay now: send it everything not acknowledged, oldest first."""
        self.conn = conn
        self.sent_seq = self.outbox.acked_seq
        self._in_flight.clear()
        if self.outbox.backlog:
            log.info(
                "%s: sending %d events not yet acknowledged (from seq %d)",
                conn.who,
                self.outbox.backlog,
                self.outbox.acked_seq + 1,
            )
        self._fill()

    def detach(self, conn: Connection) -> None:
        if self.conn is conn:
            self.conn = None
            self.sent_seq = self.outbox.acked_seq
            self._in_flight.clear()

    def ack(self, conn: Connection, seq: int) -> None:
        """``event_ack {seq}`` from ``conn``: forget every event up to ``seq``, send more."""
        if conn is not self.conn:
            return  # a replaced relay socket: its successor is sent everything again
        if seq > self.sent_seq:
            raise Refused(
                "invalid_ack",
                f"event_ack seq {seq} is beyond the newest event sent on this connection "
                f"({self.sent_seq})",
            )
        deleted = self.outbox.ack(seq)
        self.acked += deleted
        while self._in_flight and self._in_flight[0] <= seq:
            self._in_flight.popleft()
        if self.outbox.backlog < self.warn_backlog:
            self._warned_at = 0
        self._fill()

    def _fill(self) -> None:
        """Send stored events after ``sent_seq`` while the window has room."""
        conn = self.conn
        while conn is not None and conn.closing is None:
            room = self.window - len(self._in_flight)
            if room <= 0:
                return
            batch = self.outbox.after(self.sent_seq, room)
            if not batch:
                return
            for seq, event in batch:
                self._send(conn, seq, event)

    def _send(self, conn: Connection, seq: int, event: LiveEvent) -> None:
        conn.send(EventFrame(seq=seq, event=event))
        self.sent_seq = seq
        self._in_flight.append(seq)
        self.sent += 1

    def _check_backlog(self) -> None:
        backlog = self.outbox.backlog
        if backlog >= self.warn_backlog and backlog >= 2 * self._warned_at:
            self._warned_at = backlog
            oldest = self.outbox.oldest_at()
            log.warning(
                "%d session events not acknowledged by the hub (oldest from %s; relay %s); "
                "all are kept in %s",
                backlog,
                oldest.isoformat(timespec="seconds") if oldest else "?",
                "connected" if self.conn is not None else "not connected",
                self.outbox.path or "memory",
            )

    def close(self) -> None:
        self.outbox.close()
