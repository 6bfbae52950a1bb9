"""Nothing lost, nothing doubled: kill -9 the box or the hub, stop the broker, mid-burst."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.test_presence import online_with
from tests.support.broker import Mosquitto
from tests.support.events import FORM, id_number
from tests.support.procs import (
    Hub,
    XfvProcess,
    http_json,
    hub_cases,
    start_edge_on_port,
    stream,
    wait_until,
)


class Writer(threading.Thread):
    """Registers ``total`` cases one after another, retrying while the box is down; keeps the
    receipts the box acknowledged (HTTP 201), in order."""

    def __init__(self, kiosk: str, total: int, on_write: Callable[[int], None] | None = None):
        super().__init__(daemon=True)
        self.kiosk, self.total, self.on_write = kiosk, total, on_write
        self.receipts: list[dict] = []
        self.errors = 0

    def run(self) -> None:
        i = 0
        while len(self.receipts) < self.total:
            try:
                status, body = http_json(
                    self.kiosk + "/api/v1/cases", body={**FORM, "id_number": id_number(i)}
                )
            except OSError:
                self.errors += 1
                continue
            assert status == 201, body
            self.receipts.append(body)
            i += 1
            if self.on_write:
                self.on_write(len(self.receipts))


def assert_exactly_once_in_order(
    hub: Hub, token: str, node: str, receipts: list[dict], kiosk: str
) -> None:
    head = wait_until("the box's outbox head", lambda: http_json(kiosk + "/api/v1/sync")[1])
    total = head["outbox_head"]
    assert total >= len(receipts)
    wait_until(
        f"all {total} cases at the hub", lambda: hub_cases(hub, token)["total"] == total, timeout=60
    )
    rows = []
    for offset in range(0, total, 200):
        rows += hub_cases(hub, token, offset=str(offset))["cases"]
    at_hub = {r["case_no"] for r in rows}
    assert len(rows) == len(at_hub) == total, "a case is doubled at the hub"
    assert {r["case_no"] for r in receipts} <= at_hub, "an acknowledged case was lost"
    s = stream(hub, token, node)
    assert s is not None and s["head_seq"] == total and s["chain_ok"] and s["held"] == 0
    seqs = [r["seq"] for r in receipts]
    assert seqs == sorted(seqs), "receipts out of order"
    wait_until(
        "the box sees everything acked",
        lambda: http_json(kiosk + "/api/v1/sync")[1]["acked_through"] == total,
    )


def test_kill_9_the_box_during_a_burst_of_500(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    box, kiosk = start_edge_on_port(tmp_path / "a", "box-a", "510104021", mosquitto)
    processes.append(box)
    wait_until("box-a online", lambda: online_with(hub, token, "box-a"))
    kill_at = sorted(random.Random(7).sample(range(30, 470), 4))
    crashes = threading.Event()

    def maybe_kill(written: int) -> None:
        if kill_at and written >= kill_at[0]:
            kill_at.pop(0)
            box.kill()
            box.start()
            crashes.set()

    writer = Writer(kiosk, 500, maybe_kill)
    writer.start()
    writer.join(180)
    assert not writer.is_alive() and len(writer.receipts) == 500
    assert not kill_at and crashes.is_set()
    assert_exactly_once_in_order(hub, token, "box-a", writer.receipts, kiosk)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of this test's own, since the test stops and restarts it."""
    broker = Mosquitto(tmp_path / "broker").start()
    yield broker
    broker.stop()


def test_broker_stopped_mid_burst(
    tmp_path: Path, own_broker: Mosquitto, processes: list[XfvProcess]
) -> None:
    hub = Hub(tmp_path / "hub", own_broker).start()
    try:
        token = hub.login()
        box, kiosk = start_edge_on_port(tmp_path / "b", "box-b", "510104021", own_broker)
        processes.append(box)
        wait_until("box-b online", lambda: online_with(hub, token, "box-b"))

        def outage(written: int) -> None:
            if written == 60:
                own_broker.stop()
            elif written == 160:
                own_broker.start()

        writer = Writer(kiosk, 250, outage)
        writer.start()
        writer.join(120)
        assert len(writer.receipts) == 250
        assert_exactly_once_in_order(hub, token, "box-b", writer.receipts, kiosk)
    finally:
        hub.stop()


def test_kill_9_the_hub_mid_ingest(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    box, kiosk = start_edge_on_port(tmp_path / "c", "box-c", "510104021", mosquitto)
    processes.append(box)
    wait_until("box-c online", lambda: online_with(hub, token, "box-c"))
    assert hub.process is not None

    def crash(written: int) -> None:
        if written in (80, 200):
            hub.process.kill()  # type: ignore[union-attr]
            hub.restart()

    writer = Writer(kiosk, 300, crash)
    writer.start()
    writer.join(120)
    assert len(writer.receipts) == 300
    assert_exactly_once_in_order(hub, token, "box-c", writer.receipts, kiosk)
