"""Backups of the hub database with SQLite's online backup API, keeping the newest N.

The copy is taken page by page while the hub keeps running (readers and the ingest workers are
not stopped), written under a temporary name, checked with ``PRAGMA quick_check``, then renamed
into place, so a half-written or corrupt file is never taken for a backup.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

from hub.errors import HubError

PREFIX = "hub-"
SUFFIX = ".db"
PAGES_PER_STEP = 1024


class BackupError(HubError):
    """A backup could not be taken or checked."""


def backup(database: Path, dest: Path, keep: int, now: dt.datetime | None = None) -> Path:
    """Copy ``database`` into ``dest`` as ``hub-<UTC time>.db``; delete all but the newest
    ``keep`` backups there. Returns the new file."""
    if keep < 1:
        raise BackupError(f"keep must be at least 1, got {keep}")
    if not database.is_file():
        raise BackupError(f"no hub database at {str(database)!r}")
    dest.mkdir(parents=True, exist_ok=True)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    target = dest / f"{PREFIX}{stamp}{SUFFIX}"
    partial = dest / f".{target.name}.partial"
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy, pages=PAGES_PER_STEP)
            verdict = copy.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            copy.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {str(database)!r} failed: {exc}") from None
    finally:
        source.close()
    if verdict != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {str(database)!r} fails its check: {verdict}")
    partial.chmod(0o600)
    os.replace(partial, target)
    for old in backups(dest)[:-keep]:
        old.unlink()
    return target


def backups(dest: Path) -> list[Path]:
    """The backups in ``dest``, oldest first."""
    return sorted(p for p in dest.glob(f"{PREFIX}*{SUFFIX}") if p.is_file())
