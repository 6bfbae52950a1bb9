"""Zeroconf over real multicast on the loopback interface (nothing leaves the machine)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.test_presence import online_with
from tests.support.broker import Mosquitto
from tests.support.procs import XFV, Hub, XfvProcess, start_edge, wait_until


def discover() -> list[dict]:
    result = subprocess.run(
        [XFV, "discover", "--json", "--interface", "127.0.0.1", "--seconds", "3"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_a_box_without_a_broker_finds_the_hub_and_both_are_discovered(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    box = start_edge(tmp_path / "h", "box-h", "510104024", None, hub_id=hub.hub_id)
    processes.append(box)
    edge = wait_until(
        "box-h online via zeroconf", lambda: online_with(hub, token, "box-h"), timeout=30
    )
    assert edge["township"] == "510104024"
    assert f"found hub {hub.hub_id}, broker 127.0.0.1:{mosquitto.port}" in box.log()

    def both() -> list[dict] | None:
        found = discover()
        kinds = {(f["kind"], f["id"]) for f in found}
        return found if {("hub", hub.hub_id), ("edge", "box-h")} <= kinds else None

    found = wait_until("hub and box announced", both, timeout=20)
    box_row = next(f for f in found if f["id"] == "box-h")
    assert box_row["township"] == "510104024"
    assert box_row["place"] == "合江亭街道"
    assert box_row["address"] == f"127.0.0.1:{edge['kiosk_port']}"
    hub_row = next(f for f in found if f["id"] == hub.hub_id)
    assert hub_row["address"] == f"127.0.0.1:{hub.port}"
    assert hub_row["raw"]["properties"]["mqtt_port"] == str(mosquitto.port)


def test_discover_prints_a_table(hub: Hub) -> None:
    result = subprocess.run(
        [XFV, "discover", "--interface", "127.0.0.1", "--seconds", "3"],
        capture_output=True,
        text=True,
        check=True,
    )
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["KIND", "ID", "ADDRESS", "TOWNSHIP", "PLACE", "VERSION"]
    assert any(r.split()[:2] == ["hub", hub.hub_id] for r in rows), result.stdout
