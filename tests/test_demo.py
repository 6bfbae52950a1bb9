"""``xfv demo`` as a user runs it: a subprocess that brings N boxes online and stops on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from tests.support.procs import XFV, http_json, wait_until

EDGES = 3
CASES = 80


def test_demo_brings_boxes_online_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    proc = subprocess.Popen(
        [
            XFV,
            "demo",
            "--edges",
            str(EDGES),
            "--http-port",
            "0",
            "--state-dir",
            str(state),
            "--admin-password",
            "demo-password",
            "--cases",
            str(CASES),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        info = wait_until("demo.json", lambda: _read(state / "demo.json"), timeout=60)
        assert info["admin"] == {"username": "admin", "password": "demo-password"}
        assert len(info["edges"]) == EDGES
        assert len({e["township"] for e in info["edges"]}) == EDGES
        assert all(e["township"].startswith("5101") for e in info["edges"])
        status, login = http_json(
            info["api_url"] + "/login", body={"username": "admin", "password": "demo-password"}
        )
        assert status == 200

        def all_online() -> list | None:
            _, body = http_json(info["api_url"] + "/edges", login["token"])
            online = [e for e in body["edges"] if e["online"]]
            return online if len(online) == EDGES else None

        wait_until(f"{EDGES} boxes online", all_online, timeout=30)
        for edge in info["edges"]:
            status, health = http_json(edge["kiosk_url"] + "api/v1/health")
            assert status == 200 and health["node"] == edge["node"]
        # the org's users, with the demo password, and cases with a workflow history
        assert {"cd_official", "jj_office", "jj_zjj"} <= {u["username"] for u in info["users"]}
        status, leader = http_json(
            info["api_url"] + "/login",
            body={"username": "cd_official", "password": "demo-password"},
        )
        assert status == 200
        lights = wait_until(
            "lights on the supervision wall",
            lambda: _lit(http_json(info["api_url"] + "/supervision", leader["token"])[1]),
            timeout=30,
        )
        assert sum(lights.values()) >= CASES // 2 and lights["red"] > 0
        status, body = http_json(info["api_url"] + "/cases?state=replied&limit=1", leader["token"])
        assert status == 200 and body["total"] > 0
        status, health = http_json(info["signaling_url"] + "/health")
        assert status == 200 and health["status"] == "ok"

        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, _ = proc.communicate(timeout=10)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert took < 5.0, f"demo took {took:.1f}s to stop"
    assert "demo stopped" in out
    assert "Traceback" not in out, out


def _lit(supervision: dict) -> dict | None:
    lights = supervision["lights"]
    return lights if sum(lights.values()) else None


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
