"""systemd's service notification protocol (``sd_notify(3)``), without a dependency.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
namespace) and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``. ``Notifier`` sends
``READY=1``, ``STATUS=...``, ``STOPPING=1`` and ``WATCHDOG=1`` datagrams there, and does nothing
when ``NOTIFY_SOCKET`` is unset (a service started by hand, the tests, ``xfv demo``).

Watchdog pings come from a task on the event loop, so a loop that is blocked or stuck stops the
pings and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Coroutine, Mapping, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str) -> str | None:
    """The ``AF_UNIX`` address of ``NOTIFY_SOCKET``; ``None`` when unset or empty."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    raise ValueError(f"NOTIFY_SOCKET must be an absolute path or start with '@', got {value!r}")


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between watchdog pings (half of ``WATCHDOG_USEC``), or ``None`` when the
    watchdog is off or meant for another process (``WATCHDOG_PID``)."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner:
        if not owner.isdigit():
            raise ValueError(f"WATCHDOG_PID must be a process id, got {owner!r}")
        if int(owner) != pid:
            return None
    if not usec.isdigit() or int(usec) == 0:
        raise ValueError(f"WATCHDOG_USEC must be a positive integer, got {usec!r}")
    return int(usec) / 2_000_000


class Notifier:
    """Sends notifications to systemd; every method is a no-op without ``NOTIFY_SOCKET``."""

    def __init__(self, env: Mapping[str, str], pid: int | None = None) -> None:
        self.address = socket_address(env.get("NOTIFY_SOCKET", ""))
        self.interval = (
            watchdog_interval(env, os.getpid() if pid is None else pid) if self.address else None
        )
        self._failing = False

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """Read and then remove the variables, so child processes do not notify in our name."""
        env = os.environ if environ is None else environ
        notifier = cls(env)
        for name in ENV_VARS:
            env.pop(name, None)
        return notifier

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``KEY=value``) as one datagram; False when not sent."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a full queue must not stall the event loop
                sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot notify systemd at %r: %s", self.address, exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def stopping(self, status: str) -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    async def _ping_forever(self) -> None:
        assert self.interval is not None
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.interval)

    async def _ready_when_set(self, event: asyncio.Event, status: str) -> None:
        await event.wait()
        self.ready(status)

    def watchdog(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Ping the watchdog from this event loop while the block runs (no-op when off)."""
        return background(self._ping_forever() if self.interval is not None else None)

    def ready_when(
        self, event: asyncio.Event | None, status: str
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Send ``READY=1`` with ``status`` once ``event`` is set, if that happens in the block."""
        if event is None or self.address is None:
            return background(None)
        return background(self._ready_when_set(event, status))


@contextlib.asynccontextmanager
async def background(coro: Coroutine[Any, Any, None] | None) -> AsyncIterator[None]:
    """Run ``coro`` as a task for the duration of the block; cancel it and wait on exit."""
    if coro is None:
        yield
        return
    task = asyncio.create_task(coro)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())
