"""Live reception end to end: a real hub process with its media relay and relay agent, a real
signaling process (``xfv signaling run``), both on 127.0.0.1 ports, sharing one token key.

    stack = LiveStack(tmp_path / "live", mosquitto).start()   # the ``mosquitto`` fixture
    try:
        token = stack.user_token("zhang")            # POST /api/v1/live/token as that user
        box = stack.box_token("box-a", TOWNSHIP)      # what the hub sends a box with its config
        ... LivePeer(stack.signaling_url, token, "zhang") ...
    finally:
        stack.stop()

``USERS`` are created in the hub before it starts (password ``PASSWORD``); ``add_user`` adds
more. The hub's relay offers only 127.0.0.1 ICE candidates (``relay.loopback_only``); the test
process's own aiortc peers need ``loopback_ice()`` too (``LivePeer`` does it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from contracts.access import Audience, Role, mint_token
from hub.accounts import hash_password
from hub.pii import PiiVault
from hub.store.db import HubStore
from hub.store.migrations import migrations
from hub.workflow.seed import generate, insert_cases
from runtime.sqlite import open_database
from signaling.outbox import migrations as outbox_migrations
from tests.support.broker import Mosquitto, free_port
from tests.support.procs import Hub, XfvProcess, http_json, wait_until, write_toml

T = TypeVar("T")
TOWNSHIP = "510104021"
"""盐市口街道, in county 510104 (锦江区), city 5101 (成都市)."""
COUNTY = "510104"
OTHER_COUNTY = "510105"
"""青羊区: outside ``COUNTY``."""
PASSWORD = "live-password"
START_TIMEOUT = 60.0
"""Seconds a process has to come up (``xfv`` alone takes seconds to import on a busy box)."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    jurisdiction: str


USERS = (
    User("zhang", "official", COUNTY),
    User("li_monitor", "monitor", COUNTY),
    User("city_monitor", "monitor", "5101"),
    User("wang", "official", OTHER_COUNTY),
    User("qy_monitor", "monitor", OTHER_COUNTY),
)
"""Users every stack has: an official and a monitor of ``COUNTY``, a city monitor, and an
official and a monitor of ``OTHER_COUNTY``."""


def case_no(township: str = TOWNSHIP, serial: int = 7, day: str = "261121") -> str:
    """A well-formed case number of ``township`` (signaling checks the form and township only)."""
    return f"{township}-01-{day}-{serial:04d}"


def _in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on its own loop (callers may be inside a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class LiveStack:
    dir: Path
    broker: Mosquitto
    rejoin_grace: float = 5.0
    signaling_port: int = field(default_factory=free_port)
    hub_extra: dict[str, Any] = field(default_factory=dict)
    """More hub config sections (merged over the stack's own)."""
    hub: Hub = field(init=False)
    signaling: XfvProcess | None = None
    key: bytes = b""

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key_file = self.dir / "hub.key"
        self.key_file.write_text(secrets.token_hex(32))
        self.key = self.key_file.read_text().strip().encode()
        extra: dict[str, Any] = {
            "auth": {"secret_file": self.key_file},
            "signaling": {
                "url": self.signaling_url,
                "jurisdiction": "5101",
                "reconnect_min": 0.2,
                "reconnect_max": 2.0,
            },
            "relay": {"loopback_only": True},
        }
        for section, values in self.hub_extra.items():
            extra[section] = {**extra.get(section, {}), **values}
        self.hub = Hub(self.dir / "hub", self.broker, extra=extra)

    @property
    def signaling_url(self) -> str:
        return f"ws://127.0.0.1:{self.signaling_port}/ws"

    @property
    def events_db(self) -> Path:
        """Signaling's outbox of session events not yet acknowledged by the hub."""
        return self.dir / "signaling" / "events.db"

    def unacked_events(self) -> list[tuple[int, str]]:
        """(seq, kind) of every event in signaling's outbox (read beside the running server)."""
        db = open_database(self.events_db, outbox_migrations)
        try:
            return [(int(n), str(k)) for n, k in db.execute("SELECT seq, kind FROM events")]
        finally:
            db.close()

    @property
    def signaling_http(self) -> str:
        return f"http://127.0.0.1:{self.signaling_port}"

    def start(self) -> LiveStack:
        """Start signaling, then the hub (its agent connects); on failure, stop both and say
        why with their logs."""
        try:
            return self._start()
        except BaseException as exc:
            self.stop()
            raise AssertionError(f"the live stack did not start: {exc}\n{self.logs()}") from exc

    def _start(self) -> LiveStack:
        config = write_toml(
            self.dir / "signaling.toml",
            {
                "log_level": "DEBUG",
                "token_secret_file": self.key_file,
                "rejoin_grace": self.rejoin_grace,
                "hello_timeout": 10.0,
                "events_db": self.events_db,
                "http": {"host": "127.0.0.1", "port": self.signaling_port},
            },
        )
        self.signaling = XfvProcess(
            ["signaling", "run", "--config", str(config)], self.dir / "signaling.log"
        ).start()
        # meanwhile (each process takes seconds just to import): the hub's users, then the hub
        self.hub.write_config()
        admin = User("admin", "admin", "51")
        _in_thread(self._add_users((*USERS, admin)))
        self.hub.process = XfvProcess(
            ["hub", "run", "--config", str(self.hub.config_path)], self.hub.dir / "hub.log"
        ).start()
        wait_until("signaling health", self._signaling_up, START_TIMEOUT)
        wait_until("hub health with broker connected", self.hub._healthy, START_TIMEOUT)
        wait_until("the hub's relay agent connected to signaling", self.relay_connected, 20)
        return self

    def _signaling_up(self) -> bool:
        assert self.signaling is not None
        if not self.signaling.running:
            raise AssertionError(f"signaling exited:\n{self.signaling.log()[-3000:]}")
        status, _ = http_json(self.signaling_http + "/health")
        return status == 200

    def signaling_health(self) -> dict[str, Any]:
        status, body = http_json(self.signaling_http + "/health")
        assert status == 200, body
        return dict(body)

    def relay_connected(self) -> bool:
        return bool(self.signaling_health()["relay"])

    async def _add_users(self, users: tuple[User, ...]) -> None:
        """Write users straight into the hub's database (one ``xfv hub add-user`` process
        each would take seconds apiece on a busy machine)."""
        password_hash = hash_password(PASSWORD)
        async with HubStore(self.hub.database) as store:
            for u in users:
                secret = (
                    hash_password(self.hub.admin_password)
                    if u.username == "admin"
                    else password_hash
                )
                await store.add_user(u.username, secret, Role(u.role), u.jurisdiction, replace=True)

    def add_user(self, username: str, role: str, jurisdiction: str) -> None:
        """Another user (password ``PASSWORD``); works while the hub runs."""
        _in_thread(self._add_users((User(username, role, jurisdiction),)))

    def login(self, username: str) -> str:
        """An API token of ``username`` (``admin`` has the hub's admin password)."""
        return self.hub.login(username, None if username == "admin" else PASSWORD)

    def live_token(self, username: str) -> dict[str, Any]:
        """``POST /api/v1/live/token`` as ``username``: the whole answer."""
        status, body = http_json(
            self.hub.base + "/api/v1/live/token", self.login(username), body={}, method="POST"
        )
        assert status == 200, body
        return dict(body)

    def user_token(self, username: str) -> str:
        """A SIGNALING token of ``username``, as the console gets it."""
        return str(self.live_token(username)["token"])

    def box_token(self, node: str, township: str = TOWNSHIP) -> str:
        """A box's SIGNALING token, as the hub sends it with the box's config."""
        return mint_token(
            self.key,
            sub=node,
            role=Role.BOX,
            jurisdiction=township,
            audience=Audience.SIGNALING,
            ttl=dt.timedelta(hours=1),
        )

    def register_case(self, number: str) -> str:
        """A registered case ``number`` in the hub (generated fields; its township is the
        number's), as if a box had synced it."""
        township = number.split("-", 1)[0]
        db = open_database(self.hub.database, migrations)
        try:
            [row] = generate(
                PiiVault(self.hub.pii_key()), [township], 1, start=dt.datetime.now(dt.UTC), days=1
            )
            insert_cases(db, iter([(number, *row[1:])]))
        finally:
            db.close()
        return number

    def api(self, username: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, JSON) of one hub API request as ``username`` (POST when ``body``)."""
        return http_json(self.hub.base + path, self.login(username), body=body)

    def restart_hub(self) -> None:
        """Start the hub process again on the same state (after ``hub.process.kill()``) and
        wait until its relay agent is connected to signaling again."""
        assert self.hub.process is not None and not self.hub.process.running
        self.hub.process.start()
        wait_until("hub health with broker connected", self.hub._healthy, START_TIMEOUT)
        wait_until("the hub's relay agent connected to signaling", self.relay_connected, 20)

    def restart_signaling(self) -> None:
        """Start the signaling process again (after ``signaling.kill()``) with the same
        config and outbox, and wait until the hub's relay agent is connected to it."""
        assert self.signaling is not None and not self.signaling.running
        self.signaling.start()
        wait_until("signaling health", self._signaling_up, START_TIMEOUT)
        wait_until("the hub's relay agent connected to signaling", self.relay_connected, 20)

    def logs(self) -> str:
        """Both processes' logs (for assertion messages)."""
        sig = self.signaling.log() if self.signaling else ""
        hub = self.hub.process.log() if self.hub.process else ""
        return f"--- signaling ---\n{sig[-4000:]}\n--- hub ---\n{hub[-4000:]}"

    def stop(self) -> None:
        self.hub.stop()
        if self.signaling is not None:
            self.signaling.stop()
