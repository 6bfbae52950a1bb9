"""The ingest writers: processes of their own that verify and commit box events.

Decoding, hash checking, encrypting and laying out an event (``events.prepare``) cost ~130 us
of Python; writing it (``events.commit``) ~60 us. In the hub's process that work would share
one interpreter lock with the MQTT reader. Here two worker processes take batches in turn:
each prepares its batch while the other may be committing, and they commit strictly in the
order the batches were handed in (a turn counter in shared memory), so a box's events reach
the database in order and SQLite's single writer lock is never fought over. No lock or
condition is shared between the processes: a process killed while holding one would leave
the others blocked for good (``multiprocessing.Condition.notify`` even waits for a killed
waiter to wake). A waiting worker polls the counter instead; only the worker whose turn it
is writes it, and only the hub writes the ``closed`` flag.

Each worker has its own connection to the hub database. SQLite's WAL lets processes share it
with one writer at a time; every write transaction on any side starts with ``BEGIN
IMMEDIATE`` (``runtime.sqlite.transaction``), so they queue on the busy timeout instead of
failing. Workers commit with ``synchronous=FULL``: a batch is on disk, not only in the WAL's
page cache, before the hub acknowledges a single event of it.

If the hub dies (even by SIGKILL) each worker sees its parent change and exits; a batch being
written is rolled back by SQLite, and the broker redelivers those events to the next hub. If a
worker dies, the pool is replaced and the batches it held are retried (ingest is idempotent).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import multiprocessing.queues
import os
import queue
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Self

from sqlite_utils import Database

from hub.pii import PiiVault
from hub.store.events import Batch, commit, prepare_batch
from hub.store.migrations import migrations
from runtime.errors import StoreClosed
from runtime.resource import AsyncResource
from runtime.sqlite import open_database

log = logging.getLogger(__name__)

Events = list[tuple[str, str, bytes]]
"""(node, topic, payload) of each event in a batch."""

WORKERS = 2
PARENT_CHECK_SECONDS = 0.5
START_SECONDS = 30.0
TURN_POLL_SECONDS = 0.0005
TURN_TIMEOUT_SECONDS = 60.0
"""A batch that waits this long for the one before it to commit gives up (and the pool is
replaced): the one before it was lost, which only a dead worker explains."""


class TurnLost(Exception):
    """A batch waited too long for its turn to commit, or the writer closed meanwhile."""


_db: Database | None = None
_vault: PiiVault | None = None
_turn: ctypes.c_longlong | None = None
_closed: ctypes.c_bool | None = None


def _start(
    path: str,
    key: bytes,
    parent: int,
    turn: ctypes.c_longlong,
    closed: ctypes.c_bool,
    started: multiprocessing.queues.Queue[int],
) -> None:
    """Runs once in each worker process: open the database, then watch for the hub's death."""
    global _db, _vault, _turn, _closed  # noqa: PLW0603 - the worker process's own state
    _db = open_database(Path(path), migrations, synchronous="FULL")
    _vault = PiiVault(key)
    _turn, _closed = turn, closed
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    started.put(os.getpid())


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _ready() -> None:
    """A first call: it returns once a worker is up."""


def _pids(started: multiprocessing.queues.Queue[int], count: int) -> list[int]:
    """The pids of the ``count`` workers, as each reports once started (waits up to
    ``START_SECONDS`` for them)."""
    pids: list[int] = []
    deadline = time.monotonic() + START_SECONDS
    while len(pids) < count:
        try:
            pids.append(started.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            break
    return sorted(pids)


def _write(ticket: int, events: Events) -> Batch:
    """Prepare ``events``, wait until every earlier ticket has committed, commit, pass on."""
    assert _db is not None and _vault is not None and _turn is not None and _closed is not None
    prepared = prepare_batch(_vault, events)
    deadline = time.monotonic() + TURN_TIMEOUT_SECONDS
    while _turn.value != ticket:
        if _closed.value:
            raise TurnLost(f"batch {ticket}: the writer is closing")
        if time.monotonic() > deadline:
            raise TurnLost(f"batch {ticket} waited {TURN_TIMEOUT_SECONDS:.0f} s for its turn")
        time.sleep(TURN_POLL_SECONDS)
    try:
        return commit(_db, _vault, prepared)
    finally:
        _turn.value = ticket + 1


def _retrieve(done: asyncio.Future[Batch]) -> None:
    """Mark the outcome of a batch nobody waits for any more as seen (it is not an error: the
    broker redelivers whatever was not acknowledged)."""
    if not done.cancelled():
        done.exception()


class IngestWriter(AsyncResource):
    """``await writer.write(events)`` commits a batch in a worker process and returns what
    happened to each event; batches commit in the order of the calls. Use as ``async with``;
    ``close()`` is safe twice."""

    def __init__(self, path: Path, key: bytes, workers: int = WORKERS) -> None:
        self.path = path
        self._key = key
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._turn: ctypes.c_longlong | None = None
        self._closed: ctypes.c_bool | None = None
        self._tickets = 0
        self._restarting = asyncio.Lock()
        self.pids: list[int] = []

    async def open(self) -> Self:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._turn = context.RawValue(ctypes.c_longlong, self._tickets)
            self._closed = context.RawValue(ctypes.c_bool, False)
            started: multiprocessing.queues.Queue[int] = context.Queue()
            self._pool = ProcessPoolExecutor(
                self._workers,
                mp_context=context,
                initializer=_start,
                initargs=(
                    str(self.path),
                    self._key,
                    os.getpid(),
                    self._turn,
                    self._closed,
                    started,
                ),
            )
            # Start them now (one call each: the pool starts a worker per call while none is
            # idle): a worker that cannot open the database fails the hub's start-up.
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(loop.run_in_executor(self._pool, _ready) for _ in range(self._workers))
            )
            self.pids = await asyncio.to_thread(_pids, started, self._workers)
            started.close()
            log.info("ingest writers started (pids %s) on %s", self.pids, self.path)
        return self

    async def write(self, events: Events) -> Batch:
        """Commit ``events``; if a worker died (or a batch before this one was lost), the pool
        is replaced once and the batch retried (ingest is idempotent: whatever was committed
        is now a duplicate)."""
        async with self._restarting:  # a restart under way: wait for the new pool
            pool = self._pool
        try:
            return await self._submit(pool, events)
        except (BrokenProcessPool, TurnLost) as exc:
            async with self._restarting:
                if self._pool is pool and pool is not None:
                    log.error("ingest writers %s failed (%s); starting new ones", self.pids, exc)
                    await self._discard()
                    await self.open()
                pool = self._pool
            return await self._submit(pool, events)

    async def _submit(self, pool: ProcessPoolExecutor | None, events: Events) -> Batch:
        if pool is None:
            raise StoreClosed(f"ingest writer for {str(self.path)!r} is closed")
        ticket, self._tickets = self._tickets, self._tickets + 1
        done = asyncio.wrap_future(pool.submit(_write, ticket, events))
        done.add_done_callback(_retrieve)
        # Shielded: a caller that stops waiting must not cancel a ticket still queued, or every
        # later batch would wait for its turn in vain.
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if done.cancelled() and task is not None and not task.cancelling():
                # the pool was shut down under it: closed, or replaced (then retry)
                raise TurnLost(f"batch {ticket} was cancelled by a pool shutdown") from None
            raise

    async def _discard(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self._closed is not None:
            self._closed.value = True  # workers waiting for a turn stop waiting
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def close(self) -> None:
        await self._discard()
