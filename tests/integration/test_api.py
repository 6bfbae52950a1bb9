"""The hub's API: tokens, jurisdiction, quarantine of bad input, metrics, check-config."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

from contracts import topics
from tests.integration.test_presence import online_with, publish_as
from tests.support.broker import Mosquitto
from tests.support.procs import XFV, Hub, XfvProcess, http_json, start_edge, wait_until


def test_every_api_route_but_health_and_login_needs_a_token(hub: Hub) -> None:
    status, body = http_json(hub.base + "/api/v1/health")
    assert status == 200 and body["status"] == "ok"
    for path in ("/api/v1/edges", "/api/v1/me", "/api/v1/edges/box-a", "/api/v1/quarantine"):
        status, body = http_json(hub.base + path)
        assert status == 401, path
        assert "bearer token" in body["error"]
    status, body = http_json(hub.base + "/api/v1/edges", token="not-a-jwt")
    assert status == 401 and "token rejected" in body["error"]


def test_login_gives_a_token_with_role_and_jurisdiction(hub: Hub) -> None:
    status, body = http_json(
        hub.base + "/api/v1/login", body={"username": "admin", "password": "wrong-password"}
    )
    assert status == 401 and body["error"] == "invalid username or password"
    status, body = http_json(hub.base + "/api/v1/login", body={"username": "admin"})
    assert status == 400 and "password" in body["error"]
    token = hub.login()
    status, me = http_json(hub.base + "/api/v1/me", token)
    assert status == 200
    assert me == {
        "username": "admin",
        "role": "admin",
        "role_name": "管理员",
        "jurisdiction": "51",
        "jurisdiction_name": "四川省",
        "unit_id": None,
        "live_queue": False,  # live reception is off in this hub, and an admin takes no calls
        "live_wall": False,
    }


def test_repeated_wrong_passwords_are_throttled(hub: Hub) -> None:
    hub.add_user("clerk", "official", "510104", "clerk-password")
    codes = [
        http_json(hub.base + "/api/v1/login", body={"username": "clerk", "password": f"guess-{i}"})[
            0
        ]
        for i in range(6)
    ]
    assert codes == [401] * 5 + [429]


def test_a_county_official_sees_only_boxes_of_their_county(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    hub.add_user("jinjiang", "official", "510104", "jinjiang-pass")
    hub.add_user("qingyang", "official", "510105", "qingyang-pass")
    admin = hub.login()
    processes.append(start_edge(tmp_path / "e", "box-e", "510104022", mosquitto))
    wait_until("box-e online", lambda: online_with(hub, admin, "box-e"))

    jinjiang = hub.login("jinjiang", "jinjiang-pass")
    qingyang = hub.login("qingyang", "qingyang-pass")
    status, body = http_json(hub.base + "/api/v1/edges", jinjiang)
    assert status == 200 and [e["node"] for e in body["edges"]] == ["box-e"]
    status, body = http_json(hub.base + "/api/v1/edges", qingyang)
    assert status == 200 and body["edges"] == []
    status, body = http_json(hub.base + "/api/v1/edges/box-e", qingyang)
    assert status == 404
    status, body = http_json(hub.base + "/api/v1/quarantine", jinjiang)
    assert status == 403


def test_malformed_messages_are_quarantined_with_the_reason_and_the_hub_keeps_serving(
    hub: Hub, mosquitto: Mosquitto
) -> None:
    token = hub.login()
    publish_as("box-f", mosquitto, topics.edge_telemetry("box-f"), b"{not json", retain=False)
    publish_as(
        "box-f",
        mosquitto,
        topics.edge_status("box-f"),
        b'{"state": "online", "node": "box-f"}',
        retain=False,
    )
    publish_as(
        "box-f",
        mosquitto,
        topics.edge_status("box-f"),
        b'{"state": "offline", "node": "box-a", "bd_seq": 1}',
        retain=False,
    )
    publish_as("box-f", mosquitto, topics.edge_telemetry("box-f"), b"x" * 300_000, retain=False)

    def quarantined() -> list[dict] | None:
        status, body = http_json(hub.base + "/api/v1/quarantine", token)
        return body["quarantine"] if status == 200 and len(body["quarantine"]) >= 4 else None

    rows = wait_until("4 quarantined messages", quarantined)
    reasons = " | ".join(r["reason"] for r in rows)
    assert "Invalid JSON" in reasons
    assert "township: Field required" in reasons
    assert "payload names node 'box-a'" in reasons
    assert "exceeds 262144" in reasons
    assert {r["node"] for r in rows} == {"box-f"}
    status, body = http_json(hub.base + "/api/v1/health")
    assert status == 200 and body["broker_connected"]
    assert "box-f" not in [
        e["node"] for e in http_json(hub.base + "/api/v1/edges", token)[1]["edges"]
    ]


def test_metrics_are_served_by_hub_and_box(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    box = start_edge(tmp_path / "g", "box-g", "510104023", mosquitto)
    processes.append(box)
    edge = wait_until("box-g online", lambda: online_with(hub, token, "box-g"))
    hub_metrics = urllib.request.urlopen(hub.base + "/metrics", timeout=5).read().decode()
    assert "xfv_hub_broker_connected 1.0" in hub_metrics
    assert "xfv_hub_edges_online" in hub_metrics
    kiosk = f"http://127.0.0.1:{edge['kiosk_port']}"
    box_metrics = urllib.request.urlopen(kiosk + "/metrics", timeout=5).read().decode()
    assert "xfv_edge_broker_connected 1.0" in box_metrics
    assert "xfv_edge_bd_seq 1.0" in box_metrics
    status, health = http_json(kiosk + "/api/v1/health")
    assert status == 200 and health["hub_online"] and health["node"] == "box-g"


def check_config(part: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [XFV, part, "check-config", str(path)], capture_output=True, text=True, check=False
    )


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "edge.toml"
    bad.write_text(
        'node_id = "box-a"\ntownship = "510104021"\nstate_dir = "/tmp/x"\n'
        "camera = 'webcam'\n[mqtt]\nkeepalive = 1\ncolour = 'red'\n"
    )
    result = check_config("edge", bad)
    assert result.returncode == 2
    assert "mqtt.keepalive: Input should be greater than or equal to 2 (got 1)" in result.stderr
    assert "mqtt.colour: unknown key" in result.stderr
    assert 'camera: camera must be "synthetic" or a V4L2 device path' in result.stderr
    bad.write_text('hub_id = "hub-1"\n')
    result = check_config("hub", bad)
    assert result.returncode == 2
    assert "state_dir: required key is missing" in result.stderr
    example = Path(__file__).parents[2] / "firmware_config" / "edge.example.toml"
    result = check_config("edge", example)
    assert result.returncode == 0, result.stderr


def test_hub_keeps_serving_while_the_broker_is_unreachable(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A hub pointed at a dead port still answers health, saying it is not connected."""
    dead = Mosquitto(tmp_path / "dead")  # never started: nothing listens on its port
    h = Hub(tmp_path / "hub", dead)
    h.write_config()
    h.add_user("admin", "admin", "51", h.admin_password)
    h.process = XfvProcess(
        ["hub", "run", "--config", str(h.config_path)], h.dir / "hub.log"
    ).start()
    try:
        status, body = wait_until("hub health", lambda: http_json(h.base + "/api/v1/health"))
        assert status == 200 and body["broker_connected"] is False
        wait_until(
            "a logged reconnect attempt", lambda: "cannot connect to broker" in h.process.log()
        )  # type: ignore[union-attr]
        assert h.process.running
        status, body = http_json(h.base + "/api/v1/health")
        assert status == 200 and body["broker_connected"] is False
    finally:
        h.stop()
