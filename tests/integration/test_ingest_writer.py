"""The hub's ingest writer process: it dies with the hub, and a dead writer is replaced."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil

from contracts import topics
from tests.support.broker import Mosquitto
from tests.support.events import RawClient, chain_of
from tests.support.procs import Hub, http_json, stream, wait_until


def writer_of(hub: Hub) -> psutil.Process:
    assert hub.process is not None and hub.process.proc is not None
    children = psutil.Process(hub.process.proc.pid).children()
    writers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
    assert len(writers) == 1, [c.cmdline() for c in children]
    return writers[0]


def head(hub: Hub, token: str, node: str) -> int:
    return int((stream(hub, token, node) or {}).get("head_seq", 0))


def test_the_writer_exits_when_the_hub_is_killed(tmp_path: Path, mosquitto: Mosquitto) -> None:
    hub = Hub(tmp_path / "hub", mosquitto).start()
    try:
        writer = writer_of(hub)
        assert hub.process is not None and hub.process.proc is not None
        children = psutil.Process(hub.process.proc.pid).children(recursive=True)
        assert writer in children
        hub.process.kill()
        _, alive = psutil.wait_procs(children, timeout=5)  # the writer and spawn's tracker
        assert alive == []
    finally:
        hub.stop()


def test_a_dead_writer_is_replaced_and_no_event_is_lost(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    hub = Hub(tmp_path / "hub", mosquitto).start()
    token = hub.login()
    events = chain_of("box-k", 40)
    raw = RawClient("box-k", mosquitto)
    try:
        for e in events[:20]:
            raw.publish(topics.edge_events("box-k"), e)
        wait_until("head 20", lambda: head(hub, token, "box-k") == 20)
        first = writer_of(hub)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=5)
        for e in events[20:]:
            raw.publish(topics.edge_events("box-k"), e)
        wait_until("head 40", lambda: head(hub, token, "box-k") == 40)
        assert writer_of(hub).pid != first.pid
        assert hub.process is not None
        assert "ingest writer (pid" in hub.process.log()
        _, body = http_json(hub.base + "/api/v1/cases?limit=200&node=box-k", token)
        assert body["total"] == 40
    finally:
        raw.close()
        hub.stop()
