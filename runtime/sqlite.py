"""One SQLite database, one writer thread (and readers beside it).

sqlite-utils is synchronous, so every call runs on a single dedicated thread: the event loop
never blocks on the disk, and there is exactly one writer per database. The database is in WAL
mode; schema changes happen only through named, transactional sqlite-utils ``Migrations``.
Long read-only work (statistics over every case) goes to ``Store.read``: reader threads with
connections of their own, which WAL lets read while the writer writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, ParamSpec, Self, TypeVar

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from runtime.errors import StoreClosed
from runtime.resource import AsyncResource

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


def open_database(
    path: Path, migrations: Migrations, synchronous: Literal["NORMAL", "FULL"] = "FULL"
) -> Database:
    """Open (creating if needed) a WAL database at ``path`` and apply pending migrations."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    db = Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=30000")
    migrations.apply(db)
    return db


READERS = 2
"""Reader threads (and connections) of a ``Store``."""


class Store(AsyncResource):
    """An async handle on one database; subclasses add the domain methods.

    Use as ``async with Store(path, migrations) as store``; ``close()`` is safe to call twice.
    """

    def __init__(
        self,
        path: Path,
        migrations: Migrations,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
        readers: int = READERS,
    ) -> None:
        self.path = path
        self._migrations = migrations
        self._synchronous: Literal["NORMAL", "FULL"] = synchronous
        self._executor: ThreadPoolExecutor | None = None
        self._db: Database | None = None
        self._readers = readers
        self._reader_pool: ThreadPoolExecutor | None = None
        self._reader_dbs: list[Database] = []
        self._reader_local = threading.local()
        self._reader_lock = threading.Lock()

    async def open(self) -> Self:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"sqlite-{self.path.stem}")
            self._db = await self._submit(
                open_database, self.path, self._migrations, self._synchronous
            )
            self._reader_pool = ThreadPoolExecutor(
                self._readers, thread_name_prefix=f"sqlite-{self.path.stem}-read"
            )
            log.debug("opened %s", self.path)
        return self

    async def close(self) -> None:
        executor, db, readers = self._executor, self._db, self._reader_pool
        self._executor, self._db, self._reader_pool = None, None, None
        if executor is None:
            return
        if readers is not None:
            await asyncio.to_thread(readers.shutdown, wait=True)  # reads under way finish
            with self._reader_lock:
                reader_dbs, self._reader_dbs = self._reader_dbs, []
            for reader in reader_dbs:
                reader.close()
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(executor, db.close)
        executor.shutdown(wait=True)

    async def run(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn(db)`` on the database thread and return its result."""
        if self._db is None:
            raise StoreClosed(f"database {str(self.path)!r} is closed")
        return await self._submit(fn, self._db)

    async def read(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn(db)`` on a reader thread, with a connection of its own that cannot write
        (``PRAGMA query_only``): it waits for no write and holds none up, and sees what was
        committed when its statements started."""
        pool = self._reader_pool
        if pool is None:
            raise StoreClosed(f"database {str(self.path)!r} is closed")
        return await asyncio.get_running_loop().run_in_executor(pool, self._read, fn)

    def _read(self, fn: Callable[[Database], T]) -> T:
        db: Database | None = getattr(self._reader_local, "db", None)
        if db is None:
            conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            db = self._reader_local.db = Database(conn)
            with self._reader_lock:
                self._reader_dbs.append(db)
        return fn(db)

    async def _submit(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._executor is None:
            raise StoreClosed(f"database {str(self.path)!r} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))


@contextlib.contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """Like ``db.atomic()``, but take the write lock at the start (``BEGIN IMMEDIATE``).

    When another process writes the same database (the hub's ingest writer), a deferred
    transaction that reads first and writes later can fail at once with "database is locked"
    if the other side committed in between; an immediate one waits its turn instead (busy
    timeout). Nested use becomes a savepoint.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.conn.execute("COMMIT")
    except BaseException:
        db.conn.rollback()  # a no-op if the error already ended the transaction
        raise


def insert_row(db: Database, table: str, row: dict[str, object]) -> None:
    """A plain ``INSERT``: sqlite-utils' ``insert()`` costs ~0.3 ms a row in hot paths."""
    db.conn.execute(_insert_sql(table, tuple(row)), tuple(row.values()))


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
