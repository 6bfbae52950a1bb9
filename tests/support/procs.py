"""Running ``xfv`` subcommands as real processes, and writing their configs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.support.broker import HUB_USER, Mosquitto, free_port
from tests.support.events import FORM, id_number

XFV = str(Path(sys.executable).with_name("xfv"))
T = TypeVar("T")


def wait_until(
    what: str, probe: Callable[[], T | None], timeout: float = 15.0, interval: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail saying ``what`` never happened."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@dataclass
class XfvProcess:
    """One ``xfv ...`` process whose output goes to a log file."""

    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> XfvProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [XFV, *self.args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye; the broker publishes the will."""
        if self.running:
            self.signal(signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def http_json(
    url: str, token: str | None = None, body: Any = None, method: str | None = None
) -> tuple[int, Any]:
    """(status, parsed JSON body) of one request; HTTP errors are returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    lines = [f"{k} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


LOOPBACK_MDNS = {"announce": True, "interfaces": ["127.0.0.1"]}


@dataclass
class Hub:
    """A hub process with an admin user, reachable at ``base``."""

    dir: Path
    broker: Mosquitto
    port: int = field(default_factory=free_port)
    admin_password: str = "admin-password"
    process: XfvProcess | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    hub_id: str = field(default_factory=lambda: f"hub-{uuid.uuid4().hex[:8]}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.dir / "hub.toml"

    def write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        return write_toml(
            self.config_path,
            {
                "hub_id": self.hub_id,
                "state_dir": self.dir / "state",
                "log_level": "INFO",
                "http": {"host": "127.0.0.1", "port": self.port},
                "mqtt": {
                    "host": self.broker.host,
                    "port": self.broker.port,
                    "username": HUB_USER,
                    "password_file": self.broker.password_file(HUB_USER),
                    "keepalive": 5,
                    "reconnect_min": 0.2,
                    "reconnect_max": 2.0,
                },
                "discovery": LOOPBACK_MDNS,
                **self.extra,
            },
        )

    def add_user(
        self, username: str, role: str, jurisdiction: str, password: str, unit: str | None = None
    ) -> None:
        """``xfv hub add-user``; a ``unit`` user needs its ``unit`` in the units table."""
        subprocess.run(
            [
                XFV,
                "hub",
                "add-user",
                "--config",
                str(self.config_path),
                "--username",
                username,
                "--role",
                role,
                "--jurisdiction",
                jurisdiction,
                "--password",
                password,
                *(["--unit", unit] if unit else []),
            ],
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 15.0) -> Hub:
        self.write_config()
        self.add_user("admin", "admin", "51", self.admin_password)
        self.process = XfvProcess(
            ["hub", "run", "--config", str(self.config_path)], self.dir / "hub.log"
        ).start()
        wait_until("hub health with broker connected", self._healthy, timeout)
        return self

    def restart(self) -> Hub:
        """Start the hub process again on the same state (after ``kill``/``stop``)."""
        assert self.process is not None
        self.process.start()
        wait_until("hub health with broker connected", self._healthy)
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if not self.process.running:
            raise AssertionError(f"hub exited:\n{self.process.log()[-3000:]}")
        status, body = http_json(self.base + "/api/v1/health")
        return status == 200 and body["broker_connected"]

    def login(self, username: str = "admin", password: str | None = None) -> str:
        status, body = http_json(
            self.base + "/api/v1/login",
            body={"username": username, "password": password or self.admin_password},
        )
        assert status == 200, body
        return str(body["token"])

    def edge(self, token: str, node: str) -> dict[str, Any] | None:
        status, body = http_json(f"{self.base}/api/v1/edges/{node}", token)
        return body if status == 200 else None

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    @property
    def database(self) -> Path:
        return self.dir / "state" / "hub.db"

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` read from the running hub's database (WAL: a reader never blocks it)."""
        with sqlite3.connect(self.database) as db:
            return db.execute(sql, args).fetchall()

    def pii_key(self) -> bytes:
        """The personal-data key the hub made on first start (to seal seeded cases with)."""
        return bytes.fromhex((self.dir / "state" / "pii.key").read_text().strip())


def edge_config(
    directory: Path,
    node: str,
    township: str,
    broker: Mosquitto | None,
    keepalive: int = 2,
    **extra: Any,
) -> Path:
    """Write ``edge.toml`` for ``node``; ``broker=None`` leaves mqtt.host unset (zeroconf)."""
    directory.mkdir(parents=True, exist_ok=True)
    mqtt: dict[str, Any] = {
        "username": node,
        "keepalive": keepalive,
        "reconnect_min": 0.2,
        "reconnect_max": 2.0,
    }
    if broker is not None:
        mqtt |= {
            "host": broker.host,
            "port": broker.port,
            "password_file": broker.password_file(node),
        }
    else:
        mqtt |= {"password_file": directory / "mqtt-password"}
        (directory / "mqtt-password").write_text(f"{node}-secret")
    return write_toml(
        directory / "edge.toml",
        {
            "node_id": node,
            "township": township,
            "state_dir": directory / "state",
            "log_level": "DEBUG",
            "mqtt": mqtt,
            "kiosk": {"host": "127.0.0.1", "port": 0},
            "telemetry": {"interval": 1},
            "discovery": LOOPBACK_MDNS,
            "hub_discovery": {"browse_seconds": 1.5},
            **extra,
        },
    )


def start_edge_on_port(
    directory: Path, node: str, township: str, broker: Mosquitto | None, **extra: Any
) -> tuple[XfvProcess, str]:
    """``start_edge`` with the kiosk on a fixed free port (so it survives restarts);
    returns the process and the kiosk's base URL."""
    port = free_port()
    box = start_edge(
        directory, node, township, broker, kiosk={"host": "127.0.0.1", "port": port}, **extra
    )
    return box, f"http://127.0.0.1:{port}"


def start_edge(
    directory: Path, node: str, township: str, broker: Mosquitto | None, **extra: Any
) -> XfvProcess:
    config = edge_config(directory, node, township, broker, **extra)
    return XfvProcess(["edge", "run", "--config", str(config)], directory / "edge.log").start()


def hub_cases(hub: Hub, token: str, **query: str) -> dict[str, Any]:
    """``GET /api/v1/cases`` with ``query`` (at most 200 rows), asserting 200."""
    qs = "&".join(f"{k}={v}" for k, v in {"limit": "200", **query}.items())
    status, body = http_json(f"{hub.base}/api/v1/cases?{qs}", token)
    assert status == 200, body
    return dict(body)


def stream(hub: Hub, token: str, node: str) -> dict[str, Any] | None:
    """One box's sync state from ``GET /api/v1/streams``, or ``None`` before its first event."""
    _, body = http_json(hub.base + "/api/v1/streams", token)
    return next((s for s in body["streams"] if s["node"] == node), None)


def register_with_photo(kiosk: str, hub: Hub, token: str, n: int) -> tuple[str, str]:
    """Take a photo at the box's kiosk, register a case with it (ID number ``id_number(n)``)
    and wait until the hub has the case complete; returns (case_no, the photo's sha256)."""
    status, photo = http_json(kiosk + "/api/v1/photos", body={}, method="POST")
    assert status == 201, photo
    sha = str(photo["sha256"])
    status, receipt = http_json(
        kiosk + "/api/v1/cases", body={**FORM, "id_number": id_number(n), "photos": [sha]}
    )
    assert status == 201, receipt
    case_no = str(receipt["case_no"])
    wait_until(
        "the case and its photo complete at the hub",
        lambda: (
            (r := http_json(f"{hub.base}/api/v1/cases/{case_no}", token))[0] == 200
            and r[1]["complete"]
        ),
        timeout=30,
    )
    return case_no, sha
