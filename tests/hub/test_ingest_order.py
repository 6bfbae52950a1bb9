"""The ingest writer's worker processes commit batches in the order they were handed in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil

from contracts import topics
from hub.ingest.writer import WORKERS, IngestWriter
from hub.store.events import Batch, Outcome
from hub.store.migrations import migrations
from runtime.sqlite import open_database
from tests.support.events import chain_of

KEY = bytes(range(32))


def batches(node: str, events: int, size: int) -> list[list[tuple[str, str, bytes]]]:
    topic = topics.edge_events(node)
    payloads = [(node, topic, e.to_payload()) for e in chain_of(node, events)]
    return [payloads[i : i + size] for i in range(0, events, size)]


async def test_concurrent_batches_commit_in_order(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    open_database(path, migrations).close()
    # uneven sizes, so a later batch is often prepared before an earlier one
    work = batches("box-a", 300, 7) + batches("box-b", 60, 60)
    async with IngestWriter(path, KEY) as writer:
        results = await asyncio.gather(*(writer.write(batch) for batch in work))
        again = await writer.write(work[0])
    outcomes = [o for r in results for o in r.outcomes]
    assert outcomes == [Outcome.APPLIED] * 360  # nothing held: no batch overtook its elder
    assert again.outcomes == [Outcome.DUPLICATE] * 7
    db = open_database(path, migrations)
    heads = dict(db.execute("SELECT node, head_seq FROM streams").fetchall())
    assert heads == {"box-a": 300, "box-b": 60}
    assert db.execute("SELECT count(*) FROM cases").fetchone()[0] == 360


async def test_close_does_not_wait_for_batches_never_run(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    open_database(path, migrations).close()
    writer = await IngestWriter(path, KEY).open()
    pending = [asyncio.ensure_future(writer.write(b)) for b in batches("box-a", 3000, 10)]
    await asyncio.sleep(0.1)
    await asyncio.wait_for(writer.close(), 20)  # a worker waiting for a cancelled turn gives up
    await writer.close()  # safe twice
    done = await asyncio.gather(*pending, return_exceptions=True)
    committed = [d for d in done if isinstance(d, Batch)]
    # what committed is a prefix of what was handed in: no batch committed past a lost one
    assert done[: len(committed)] == committed
    assert all(isinstance(d, Exception) for d in done[len(committed) :])
    assert len(committed) < len(done)  # close did not wait for all 300 batches
    db = open_database(path, migrations)
    head = db.execute("SELECT coalesce(max(head_seq), 0) FROM streams").fetchone()[0]
    assert head == 10 * len(committed)


async def test_pids_names_every_worker(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    open_database(path, migrations).close()
    async with IngestWriter(path, KEY) as writer:
        children = {p.pid for p in psutil.Process().children()}
        assert len(writer.pids) == WORKERS and set(writer.pids) <= children, (writer.pids, children)
        first = writer.pids
        await writer.write(batches("box-a", 5, 5)[0])
        assert writer.pids == first
