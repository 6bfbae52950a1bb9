"""The ingest writer: a process of its own that verifies and commits box events.

Decoding, hash checking, encrypting and projecting an event cost ~150 us of Python. In the
hub's process that work would share one interpreter lock with the MQTT reader, and each would
slow the other; in a process of its own it runs on the other core while the reader batches the
next events and acknowledges the last ones.

The writer has its own connection to the hub database. SQLite's WAL lets two processes share it
with one writer at a time; every write transaction on either side starts with ``BEGIN
IMMEDIATE`` (``runtime.sqlite.transaction``), so they queue on the busy timeout instead of
failing. The writer commits with ``synchronous=FULL``: a batch is on disk, not only in the
WAL's page cache, before the hub acknowledges a single event of it.

If the hub dies (even by SIGKILL) the writer sees its parent change and exits; a batch it was
writing is rolled back by SQLite, and the broker redelivers those events to the next hub.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Self

from sqlite_utils import Database

from hub.pii import PiiVault
from hub.store.events import Batch, ingest_batch
from hub.store.migrations import migrations
from runtime.errors import StoreClosed
from runtime.resource import AsyncResource
from runtime.sqlite import open_database

log = logging.getLogger(__name__)

Events = list[tuple[str, str, bytes]]
"""(node, topic, payload) of each event in a batch."""

PARENT_CHECK_SECONDS = 0.5

_db: Database | None = None
_vault: PiiVault | None = None


def _start(path: str, key: bytes, parent: int) -> None:
    """Runs once in the writer process: open the database, then watch for the hub's death."""
    global _db, _vault  # noqa: PLW0603 - the worker process's own state
    _db = open_database(Path(path), migrations, synchronous="FULL")
    _vault = PiiVault(key)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _ready() -> int:
    return os.getpid()


def _write(events: Events) -> Batch:
    assert _db is not None and _vault is not None, "writer process not started"
    return ingest_batch(_db, _vault, events)


class IngestWriter(AsyncResource):
    """``await writer.write(events)`` commits a batch in the writer process and returns what
    happened to each event. Use as ``async with``; ``close()`` is safe twice."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = key
        self._pool: ProcessPoolExecutor | None = None
        self._restarting = asyncio.Lock()
        self.pid: int | None = None

    async def open(self) -> Self:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(str(self.path), self._key, os.getpid()),
            )
            # Start it now: a writer that cannot open the database fails the hub's start-up.
            self.pid = await asyncio.get_running_loop().run_in_executor(self._pool, _ready)
            log.info("ingest writer started (pid %d) on %s", self.pid, self.path)
        return self

    async def write(self, events: Events) -> Batch:
        """Commit ``events``; a writer that died is restarted once and the batch retried
        (ingest is idempotent: whatever the dead writer committed is now a duplicate).

        Batches may be written concurrently: the writer takes them in the order of the calls,
        and when it dies, every batch it held fails; the first to notice restarts it and the
        rest retry on the new one, in their order."""
        pool = self._pool
        try:
            return await self._submit(pool, events)
        except BrokenProcessPool:
            async with self._restarting:
                if self._pool is pool:
                    log.error("ingest writer (pid %s) died; starting a new one", self.pid)
                    await self._discard()
                    await self.open()
            return await self._submit(self._pool, events)

    async def _submit(self, pool: ProcessPoolExecutor | None, events: Events) -> Batch:
        if pool is None:
            raise StoreClosed(f"ingest writer for {str(self.path)!r} is closed")
        return await asyncio.get_running_loop().run_in_executor(pool, _write, events)

    async def _discard(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def close(self) -> None:
        await self._discard()
