"""``runtime.sqlite.Store`` on a real SQLite file: one writer thread, readers beside it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from runtime.errors import StoreClosed
from runtime.sqlite import Store, transaction

migrations = Migrations("test-store")


@migrations()
def _table(db: Database) -> None:
    db.execute("CREATE TABLE t (n INTEGER)")


def insert_one(db: Database) -> None:
    with transaction(db):
        db.execute("INSERT INTO t VALUES (1)")


async def test_a_read_goes_on_while_the_writer_is_busy_and_sees_what_was_committed(
    tmp_path: Path,
) -> None:
    async with Store(tmp_path / "s.db", migrations) as store:
        await store.run(insert_one)
        inside, release = threading.Event(), threading.Event()

        def long_write(db: Database) -> None:
            with transaction(db):
                db.execute("INSERT INTO t VALUES (2)")
                inside.set()
                assert release.wait(10)

        writing = asyncio.create_task(store.run(long_write))
        assert await asyncio.to_thread(inside.wait, 10)
        # the writer thread is held inside a transaction: a read is not queued behind it
        seen = await asyncio.wait_for(
            store.read(lambda db: [r[0] for r in db.execute("SELECT n FROM t")]), 5
        )
        assert seen == [1]
        release.set()
        await writing
        assert await store.read(lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0]) == 2


async def test_a_reader_cannot_write(tmp_path: Path) -> None:
    async with Store(tmp_path / "s.db", migrations) as store:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await store.read(lambda db: db.execute("INSERT INTO t VALUES (3)"))
        assert await store.run(lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0]) == 0


async def test_close_waits_for_reads_closes_their_connections_and_is_safe_twice(
    tmp_path: Path,
) -> None:
    store = await Store(tmp_path / "s.db", migrations).open()
    started, release = threading.Event(), threading.Event()

    def slow_read(db: Database) -> int:
        started.set()
        assert release.wait(10)
        return int(db.execute("SELECT count(*) FROM t").fetchone()[0])

    reading = asyncio.create_task(store.read(slow_read))
    assert await asyncio.to_thread(started.wait, 10)
    connections = list(store._reader_dbs)
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0.1)
    assert not closing.done()  # the read under way finishes first
    release.set()
    assert await reading == 0
    await closing
    await store.close()
    for db in connections:
        with pytest.raises(sqlite3.ProgrammingError):
            db.execute("SELECT 1")
    with pytest.raises(StoreClosed):
        await store.read(lambda db: 1)
