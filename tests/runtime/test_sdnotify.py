"""systemd readiness and watchdog (``runtime/sdnotify.py``) against a real notify socket.

A real ``AF_UNIX`` datagram socket stands in for systemd's: a path in ``tmp_path`` or an
abstract ``@name``. The box runs as a real ``xfv edge run`` process against a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runtime.cli import run_until_signal
from runtime.sdnotify import Notifier
from tests.support.broker import Mosquitto, free_port
from tests.support.procs import XfvProcess, http_json, start_edge


@dataclass
class Datagram:
    at: float  # time.monotonic() when it arrived
    text: str

    @property
    def fields(self) -> list[str]:
        return self.text.split("\n")


@dataclass
class NotifySocket:
    """What systemd listens on: every datagram is recorded with its arrival time by a thread,
    so the times stay true while the event loop under test is blocked."""

    env_value: str  # what NOTIFY_SOCKET says: a path or "@name"
    received: list[Datagram] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        address = "\0" + self.env_value[1:] if self.env_value.startswith("@") else self.env_value
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(address)
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append(Datagram(time.monotonic(), data.decode()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def with_field(self, line: str, since: float = 0.0) -> list[Datagram]:
        return [d for d in list(self.received) if line in d.fields and d.at >= since]

    def wait_for(self, line: str, timeout: float) -> Datagram:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.with_field(line):
                return found[0]
            time.sleep(0.02)
        raise AssertionError(
            f"no {line!r} on {self.env_value} within {timeout}s; got {self.received!r}"
        )


@pytest.fixture
def notify_path(tmp_path: Path) -> Iterator[NotifySocket]:
    path = tmp_path / "notify"
    assert len(str(path)) < 100, f"socket path too long for AF_UNIX: {path}"
    sock = NotifySocket(str(path))
    yield sock
    sock.close()


@pytest.fixture
def notify_abstract() -> Iterator[NotifySocket]:
    sock = NotifySocket(f"@xfv-test-{uuid.uuid4().hex}")
    yield sock
    sock.close()


def gaps(datagrams: list[Datagram]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(datagrams)]


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_edge_process_is_ready_pings_the_watchdog_and_says_stopping(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mosquitto: Mosquitto,
    processes: list[XfvProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    systemd: NotifySocket = request.getfixturevalue(f"notify_{kind}")
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # WatchdogSec=0.4: a ping every 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    port = free_port()
    box = start_edge(
        tmp_path / "box", "box-l", "510104021", mosquitto, kiosk={"host": "127.0.0.1", "port": port}
    )
    processes.append(box)

    ready = systemd.wait_for("READY=1", timeout=30)
    assert "STATUS=the box is serving" in ready.fields, ready
    # READY=1 means serving: the kiosk answers right away (systemd starts the kiosk browser then).
    status, health = http_json(f"http://127.0.0.1:{port}/api/v1/health")
    assert status == 200, health

    time.sleep(1.3)
    pings = systemd.with_field("WATCHDOG=1", since=ready.at)
    assert len(pings) >= 4, f"expected a ping every 0.2 s for 1.3 s, got {len(pings)}"
    median = statistics.median(gaps(pings))
    assert 0.15 <= median <= 0.3, f"median gap between pings {median:.3f}s, expected ~0.2s"
    assert not systemd.with_field("STOPPING=1")

    box.signal(signal.SIGTERM)
    stopping = systemd.wait_for("STOPPING=1", timeout=10)
    assert "STATUS=stopping on SIGTERM" in stopping.fields, stopping
    assert box.proc is not None
    assert box.proc.wait(15) == 0, box.log()[-2000:]
    assert len(systemd.with_field("READY=1")) == 1


async def test_watchdog_pings_stop_while_the_loop_is_blocked(notify_path: NotifySocket) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": notify_path.env_value, "WATCHDOG_USEC": "200000"})
    assert notifier.interval == pytest.approx(0.1)
    async with notifier.watchdog():
        await asyncio.sleep(0.35)
        blocked_from = time.monotonic()
        time.sleep(1.0)  # noqa: ASYNC251 - a stuck event loop: systemd must see no ping
        blocked_until = time.monotonic()
        await asyncio.sleep(0.35)
    closed_at = time.monotonic()
    assert asyncio.all_tasks() == {asyncio.current_task()}, "the watchdog task outlived its block"
    await asyncio.sleep(0.3)

    pings = notify_path.with_field("WATCHDOG=1")
    before = [p for p in pings if p.at < blocked_from]
    during = [p for p in pings if blocked_from + 0.05 < p.at < blocked_until]
    after = [p for p in pings if blocked_until <= p.at <= closed_at + 0.05]
    late = [p for p in pings if p.at > closed_at + 0.05]
    assert len(before) >= 3, f"pings before the block: {before}"
    assert during == [], f"pings while the loop was blocked: {during}"
    assert len(after) >= 2, f"pings did not resume after the block: {after}"
    assert late == [], f"pings after the watchdog stopped: {late}"
    assert after[0].at - blocked_until < 0.1, "the overdue ping was not sent once unblocked"


async def test_watchdog_is_cancelled_with_the_task_that_owns_it(
    notify_path: NotifySocket,
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": notify_path.env_value, "WATCHDOG_USEC": "100000"})

    async def service() -> None:
        async with notifier.watchdog():
            await asyncio.sleep(30)

    task = asyncio.create_task(service())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cancelled_at = time.monotonic()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    await asyncio.sleep(0.3)
    pings = notify_path.with_field("WATCHDOG=1")
    assert len(pings) >= 3
    assert [p for p in pings if p.at > cancelled_at + 0.05] == []


async def test_watchdog_pid_of_another_process_means_no_pings(notify_path: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": notify_path.env_value, "WATCHDOG_USEC": "100000"}
    other = Notifier({**env, "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.interval is None
    async with other.watchdog():
        await asyncio.sleep(0.35)
    assert notify_path.with_field("WATCHDOG=1") == []

    ours = Notifier({**env, "WATCHDOG_PID": str(os.getpid())})
    async with ours.watchdog():
        await asyncio.sleep(0.35)
    assert len(notify_path.with_field("WATCHDOG=1")) >= 3


def test_run_until_signal_without_notify_socket_sends_nothing(
    notify_path: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    ready = asyncio.Event()
    ran: list[str] = []

    async def service() -> None:
        ready.set()
        await asyncio.sleep(0.4)
        ran.append("done")

    run_until_signal(service, ready=ready, what="the test service")
    time.sleep(0.1)
    assert ran == ["done"]
    assert notify_path.received == []
    assert Notifier(os.environ).notify("READY=1") is False


def test_run_until_signal_notifies_ready_then_returns(
    notify_path: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same service with NOTIFY_SOCKET set: proves the test above could see a datagram,
    and that run_until_signal takes the variables out of the environment (child processes,
    such as the hub's ingest workers, must not notify in its name)."""
    monkeypatch.setenv("NOTIFY_SOCKET", notify_path.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    ready = asyncio.Event()

    async def service() -> None:
        await asyncio.sleep(0.2)
        ready.set()
        await asyncio.sleep(0.3)

    run_until_signal(service, ready=ready, what="the test service")
    notify_path.wait_for("READY=1", timeout=2)
    assert notify_path.received[0].fields == ["WATCHDOG=1"]
    ready_msg = notify_path.with_field("READY=1")[0]
    assert ready_msg.fields == ["READY=1", "STATUS=the test service is serving"]
    assert ready_msg.at - notify_path.received[0].at >= 0.15
    assert "NOTIFY_SOCKET" not in os.environ
    assert "WATCHDOG_USEC" not in os.environ


def test_notify_to_a_missing_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.notify("READY=1") is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NOTIFY_SOCKET": "relative/notify"}, "NOTIFY_SOCKET must be an absolute path"),
        ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30s"}, "WATCHDOG_USEC must be a positive"),
        ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "0"}, "got '0'"),
        ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "x"}, "got 'x'"),
    ],
)
def test_bad_environment_is_an_error_naming_the_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Notifier(env)
