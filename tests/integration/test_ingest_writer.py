"""The hub's ingest writer processes: they die with the hub, and a dead one is replaced."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import psutil

from contracts import topics
from hub.ingest.writer import WORKERS
from tests.support.broker import Mosquitto
from tests.support.events import RawClient, chain_of
from tests.support.procs import Hub, http_json, stream, wait_until


def writers_of(hub: Hub) -> list[psutil.Process]:
    assert hub.process is not None and hub.process.proc is not None
    children = psutil.Process(hub.process.proc.pid).children()
    writers = [c for c in children if _running(c) and "spawn_main" in " ".join(c.cmdline())]
    assert len(writers) == WORKERS, [c.cmdline() for c in children]
    return writers


def _running(child: psutil.Process) -> bool:
    """A killed writer stays a zombie until the hub reaps it; it is no writer any more."""
    try:
        return child.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def head(hub: Hub, token: str, node: str) -> int:
    return int((stream(hub, token, node) or {}).get("head_seq", 0))


def test_the_writers_exit_when_the_hub_is_killed(tmp_path: Path, mosquitto: Mosquitto) -> None:
    hub = Hub(tmp_path / "hub", mosquitto).start()
    try:
        writers = writers_of(hub)
        assert hub.process is not None and hub.process.proc is not None
        children = psutil.Process(hub.process.proc.pid).children(recursive=True)
        assert set(writers) <= set(children)
        hub.process.kill()
        _, alive = psutil.wait_procs(children, timeout=5)  # the writers and spawn's tracker
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
        first = writers_of(hub)
        os.kill(first[0].pid, signal.SIGKILL)
        first[0].wait(timeout=5)
        for e in events[20:]:
            raw.publish(topics.edge_events("box-k"), e)
        wait_until("head 40", lambda: head(hub, token, "box-k") == 40)
        assert not {w.pid for w in writers_of(hub)} & {w.pid for w in first}
        assert hub.process is not None
        assert "ingest writers [" in hub.process.log()
        _, body = http_json(hub.base + "/api/v1/cases?limit=200&node=box-k", token)
        assert body["total"] == 40
    finally:
        raw.close()
        hub.stop()


def test_a_writer_killed_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    hub = Hub(tmp_path / "hub", mosquitto).start()
    token = hub.login()
    boxes = {node: RawClient(node, mosquitto) for node in ("box-k", "box-l")}
    chains = {node: chain_of(node, 300) for node in boxes}

    def publish(node: str) -> None:
        for e in chains[node]:
            boxes[node].publish(topics.edge_events(node), e)

    publishers = [threading.Thread(target=publish, args=(node,)) for node in boxes]
    try:
        first = writers_of(hub)
        for t in publishers:
            t.start()
        wait_until("box-k past 60", lambda: head(hub, token, "box-k") >= 60)
        os.kill(first[1].pid, signal.SIGKILL)
        for t in publishers:
            t.join(60)
        for node in boxes:
            wait_until(f"{node} at 300", lambda n=node: head(hub, token, n) == 300, timeout=60)
        for node in boxes:
            _, body = http_json(hub.base + f"/api/v1/cases?limit=1&node={node}", token)
            assert body["total"] == 300
        _, quarantined = http_json(hub.base + "/api/v1/quarantine", token)
        assert quarantined["quarantine"] == []
        assert not {w.pid for w in writers_of(hub)} & {w.pid for w in first}
    finally:
        for client in boxes.values():
            client.close()
        hub.stop()
