"""Box presence at the hub over a real Mosquitto: birth, will, bd_seq, reconnects."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from contracts import topics
from contracts.presence import Death
from tests.support.broker import Mosquitto, password_of
from tests.support.procs import Hub, XfvProcess, start_edge, wait_until

TOWNSHIP = "510104021"
KEEPALIVE = 2
MOSQUITTO_SWEEP = 7.0


def online_with(hub: Hub, token: str, node: str, bd_seq: int | None = None) -> dict | None:
    edge = hub.edge(token, node)
    if edge and edge["online"] and (bd_seq is None or edge["bd_seq"] == bd_seq):
        return edge
    return None


def offline(hub: Hub, token: str, node: str) -> bool:
    edge = hub.edge(token, node)
    return bool(edge) and not edge["online"]


def test_box_comes_online_with_telemetry(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    processes.append(start_edge(tmp_path / "a", "box-a", TOWNSHIP, mosquitto))
    edge = wait_until("box-a online", lambda: online_with(hub, token, "box-a"))
    assert edge["township"] == TOWNSHIP
    assert edge["township_name"] == "盐市口街道"
    assert edge["county"] == "510104"
    assert edge["bd_seq"] == 1
    tel = wait_until("telemetry", lambda: (hub.edge(token, "box-a") or {}).get("telemetry"))
    assert tel["mem_total"] > 0 and tel["disk_free"] > 0 and tel["uptime_s"] > 0
    assert tel["load1"] >= 0


def test_kill_9_goes_offline_then_returns_with_next_bd_seq(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    box = start_edge(tmp_path / "b", "box-b", TOWNSHIP, mosquitto, keepalive=KEEPALIVE)
    processes.append(box)
    wait_until("box-b online", lambda: online_with(hub, token, "box-b", 1))

    box.kill()
    killed = time.monotonic()
    wait_until(
        "box-b offline after kill -9", lambda: offline(hub, token, "box-b"), timeout=1.5 * KEEPALIVE
    )
    assert time.monotonic() - killed <= 1.5 * KEEPALIVE

    processes.append(box.start())
    edge = wait_until("box-b online again", lambda: online_with(hub, token, "box-b", 2))
    assert edge["bd_seq"] == 2


def test_frozen_box_is_declared_dead_by_keepalive_and_its_late_will_is_stale(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    """SIGSTOP keeps the TCP connection open: only the keepalive can find the box dead."""
    token = hub.login()
    box = start_edge(tmp_path / "c", "box-c", TOWNSHIP, mosquitto, keepalive=KEEPALIVE)
    processes.append(box)
    wait_until("box-c online", lambda: online_with(hub, token, "box-c", 1))

    box.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        # Mosquitto 2.0 sweeps for expired keepalives only every few seconds (measured 4-8.6 s
        # at keepalive 2 s), so allow 1.5 x keepalive plus that sweep.
        wait_until(
            "box-c offline by keepalive",
            lambda: offline(hub, token, "box-c"),
            timeout=1.5 * KEEPALIVE + MOSQUITTO_SWEEP,
        )
        assert time.monotonic() - stopped <= 1.5 * KEEPALIVE + MOSQUITTO_SWEEP
    finally:
        box.signal(signal.SIGCONT)
    edge = wait_until("box-c back with bd_seq 2", lambda: online_with(hub, token, "box-c", 2))
    assert edge["online"]


def test_a_will_with_an_old_bd_seq_does_not_flip_a_live_box(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    processes.append(start_edge(tmp_path / "d", "box-d", TOWNSHIP, mosquitto))
    wait_until("box-d online", lambda: online_with(hub, token, "box-d", 1))

    # The will of an older connection (bd_seq 0), delivered late, as the broker would.
    stale = Death(node="box-d", bd_seq=0).to_payload()
    publish_as("box-d", mosquitto, topics.edge_status("box-d"), stale, retain=True)
    time.sleep(1.0)
    assert online_with(hub, token, "box-d", 1), "a stale will marked a live box offline"
    assert "ignored stale offline of box-d" in hub.process.log()  # type: ignore[union-attr]

    # The current bd_seq's death does count.
    publish_as(
        "box-d",
        mosquitto,
        topics.edge_status("box-d"),
        Death(node="box-d", bd_seq=1).to_payload(),
        retain=False,
    )
    wait_until("box-d offline on its current death", lambda: offline(hub, token, "box-d"))


def publish_as(user: str, broker: Mosquitto, topic: str, payload: bytes, retain: bool) -> None:
    """Publish once, QoS 1, with ``user``'s credentials, and wait for the PUBACK."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-test-publisher")
    client.username_pw_set(user, password_of(user))
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)
        assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()
