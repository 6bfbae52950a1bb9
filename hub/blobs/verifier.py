"""Marking case photos verified once their blob is complete, and cases complete after that."""

from __future__ import annotations

import asyncio
import logging

from sqlite_utils import Database

from hub.blobs.store import BlobStore
from hub.store.db import HubStore
from runtime.sqlite import transaction

log = logging.getLogger(__name__)


async def verify_photos_forever(store: HubStore, blobs: BlobStore, interval: float = 1.0) -> None:
    while True:
        await verify_photos(store, blobs)
        await asyncio.sleep(interval)


async def verify_photos(store: HubStore, blobs: BlobStore) -> int:
    """One sweep; returns how many photos became verified."""
    pending: list[str] = await store.run(
        lambda db: [
            r[0] for r in db.execute("SELECT DISTINCT sha256 FROM case_photos WHERE verified = 0")
        ]
    )
    done = [sha for sha in pending if await blobs.is_complete(sha)]
    if not done:
        return 0

    def write(db: Database) -> None:
        with transaction(db):
            marks = ", ".join("?" * len(done))
            cases = [
                r[0]
                for r in db.execute(
                    f"SELECT DISTINCT case_no FROM case_photos WHERE sha256 IN ({marks})", done
                )
            ]
            db.execute(f"UPDATE case_photos SET verified = 1 WHERE sha256 IN ({marks})", done)
            for case_no in cases:
                db.execute(
                    "UPDATE cases SET photos_verified = (SELECT count(*) FROM case_photos "
                    "WHERE case_no = ? AND verified = 1) WHERE case_no = ?",
                    [case_no, case_no],
                )
                db.execute(
                    "UPDATE cases SET complete = (photos_verified = photos_total) "
                    "WHERE case_no = ?",
                    [case_no],
                )
                db.execute(
                    "INSERT INTO case_timeline (case_no, ts, kind, actor, detail) "
                    "SELECT ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'), 'photos_verified', 'hub', "
                    "json_object('verified', photos_verified, 'total', photos_total) "
                    "FROM cases WHERE case_no = ? AND complete = 1",
                    [case_no, case_no],
                )

    await store.run(write)
    log.info("verified %d photo(s)", len(done))
    return len(done)
