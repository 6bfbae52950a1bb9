"""``xfv demo``: broker, hub, signaling and N simulated boxes in one process, on loopback.

Everything binds 127.0.0.1 and zeroconf stays on the loopback interface, so the demo touches
no network. ``DIR/demo.json`` tells scripts where everything is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import click
from sqlite_utils import Database

from contracts.access import Role
from contracts.places import place_name, townships_of
from edge.app import EdgeApp
from edge.config import EdgeConfig, TelemetryConfig
from hub.accounts import hash_password
from hub.app import HubApp
from hub.config import HubConfig, HubHttpConfig, SignalingLink
from hub.media.config import RelayConfig
from hub.org import UserRow, apply_org, load_units, load_users
from hub.store.db import HubStore
from hub.workflow.history import walk
from hub.workflow.scanner import adopt
from hub.workflow.seed import generate, insert_cases
from runtime.cli import run_until_signal
from runtime.config import DiscoveryConfig, HttpConfig, MqttConfig, local_secret
from runtime.logs import setup_logging
from runtime.sqlite import transaction
from signaling.config import SignalingConfig
from signaling.server import SignalingServer
from xfv.broker import EmbeddedBroker

log = logging.getLogger(__name__)

CITY = "5101"  # 成都市, Sichuan
HUB_ID = "hub-5101"
ADMIN = "admin"
LOOPBACK = "127.0.0.1"
HISTORY_DAYS = 120
"""Demo cases are registered over this many days before now."""


def edge_configs(n: int, state_dir: Path, broker: EmbeddedBroker) -> list[EdgeConfig]:
    towns = townships_of(CITY)
    configs = []
    for i in range(n):
        town = towns[i % len(towns)].code.code
        node = f"box-{town}" if i < len(towns) else f"box-{town}-{i // len(towns)}"
        configs.append(
            EdgeConfig(
                node_id=node,
                township=town,
                state_dir=state_dir / "edges" / node,
                mqtt=MqttConfig(
                    host=broker.host,
                    port=broker.port,
                    username=node,
                    keepalive=10,
                    reconnect_min=0.5,
                    reconnect_max=5,
                ),
                kiosk=HttpConfig(host=LOOPBACK, port=0),
                telemetry=TelemetryConfig(interval=5),
                discovery=DiscoveryConfig(interfaces=[LOOPBACK]),
            )
        )
    return configs


async def wait_online(hub: HubApp, n: int, within: float = 30.0) -> int:
    """Wait until ``n`` boxes are online at the hub, printing progress; returns how many."""
    loop = asyncio.get_running_loop()
    deadline, shown = loop.time() + within, -1
    while True:
        online = sum(1 for e in await hub.store.edges() if e["online"])
        if online != shown:
            click.echo(f"  终端上线 boxes online: {online}/{n}")
            shown = online
        if online >= n or loop.time() > deadline:
            return online
        await asyncio.sleep(0.2)


async def prepare_hub(hub: HubApp, password: str, cases: int) -> list[UserRow]:
    """The admin, the shipped units and users (every one with ``password``) and, on a fresh
    database, ``cases`` generated cases with a workflow history; returns the users."""
    units = load_units()
    users = load_users(None, units)
    everyone = {u.username for u in users}
    async with HubStore(hub.config.database) as store:
        await store.add_user(
            ADMIN, hash_password(password), Role.ADMIN, CITY, "演示管理员", replace=True
        )
        await store.run(lambda db: apply_org(db, units, users, lambda _: password, reset=everyone))
        fresh = await store.run(lambda db: not db.execute("SELECT 1 FROM cases").fetchone())
        if not (fresh and cases):
            return users
        now = dt.datetime.now(dt.UTC)
        towns = [t.code.code for t in townships_of(CITY)]
        shown: list[int] = []

        def progress(done: int, total: int) -> None:
            tenth = done * 10 // total
            if not shown or tenth > shown[-1]:
                shown.append(tenth)
                click.echo(f"  演示案件办理过程 demo case history: {done}/{total}")

        def build(db: Database) -> Counter[str]:
            start = now - dt.timedelta(days=HISTORY_DAYS)
            insert_cases(db, generate(hub.vault, towns, cases, start=start, days=HISTORY_DAYS))
            with transaction(db):
                adopt(db, hub.rules)
            return walk(db, hub.rules, units, users, now, progress=progress)

        click.echo(f"  生成演示案件 demo cases: {cases}")
        taken = await store.run(build)
        click.echo("  " + ", ".join(f"{k} {v}" for k, v in sorted(taken.items())))
    return users


async def run_demo(
    edges: int, http_port: int, state_dir: Path, admin_password: str | None, cases: int
) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    password = admin_password or secrets.token_urlsafe(9)
    click.echo(f"xinfang-video demo: starting broker, hub, signaling and {edges} boxes…")
    async with EmbeddedBroker(LOOPBACK) as broker, asyncio.TaskGroup() as tg:
        # signaling checks tokens with the hub's key: make it first, then start signaling, whose
        # port goes into the hub's config
        key_file = state_dir / "hub" / "hub.key"
        local_secret(key_file)
        signaling = SignalingServer(
            SignalingConfig(
                http=HttpConfig(host=LOOPBACK, port=0),
                token_secret_file=str(key_file),
                events_db=state_dir / "signaling" / "events.db",
            )
        )
        tg.create_task(signaling.run(), name="signaling")
        await signaling.ready.wait()
        hub_config = HubConfig(
            hub_id=HUB_ID,
            state_dir=state_dir / "hub",
            http=HubHttpConfig(host=LOOPBACK, port=http_port),
            mqtt=MqttConfig(
                host=broker.host,
                port=broker.port,
                username="hub",
                keepalive=10,
                reconnect_min=0.5,
                reconnect_max=5,
            ),
            discovery=DiscoveryConfig(interfaces=[LOOPBACK]),
            signaling=SignalingLink(url=f"ws://{LOOPBACK}:{signaling.port}/ws", jurisdiction=CITY),
            relay=RelayConfig(loopback_only=True),
        )
        hub = HubApp(hub_config)
        users = await prepare_hub(hub, password, cases)
        boxes = [EdgeApp(c) for c in edge_configs(edges, state_dir, broker)]
        tg.create_task(hub.run(), name="hub")
        await hub.ready.wait()
        for box in boxes:
            tg.create_task(box.run(), name=box.config.node_id)
        for box in boxes:
            await box.ready.wait()
        info = describe(hub, signaling, broker, boxes, password, users)
        (state_dir / "demo.json").write_text(json.dumps(info, ensure_ascii=False, indent=2))
        online = await wait_online(hub, edges)
        announce(info, state_dir, online)


def describe(
    hub: HubApp,
    signaling: SignalingServer,
    broker: EmbeddedBroker,
    boxes: list[EdgeApp],
    password: str,
    users: list[UserRow],
) -> dict[str, Any]:
    base = f"http://{LOOPBACK}:{hub.http_port}"
    return {
        "console_url": base + "/",
        "api_url": base + "/api/v1",
        "admin": {"username": ADMIN, "password": password},
        "users": [
            {
                "username": u.username,
                "role": u.role.value,
                "jurisdiction": u.jurisdiction,
                "unit_id": u.unit_id,
                "display_name": u.display_name,
            }
            for u in users
        ],
        "users_password": password,
        "broker": {"host": broker.host, "port": broker.port},
        "signaling_url": f"http://{LOOPBACK}:{signaling.port}",
        "signaling_ws": f"ws://{LOOPBACK}:{signaling.port}/ws",
        "hub_id": hub.config.hub_id,
        "edges": [
            {
                "node": b.config.node_id,
                "township": b.config.township,
                "township_name": place_name(b.config.township),
                "kiosk_url": f"http://{LOOPBACK}:{b.kiosk_port}/",
            }
            for b in boxes
        ],
    }


SHOWN_USERS = ("cd_official", "jj_office", "jj_zjj", "cd_monitor")
"""Users the banner names (city leader, county petition office, a unit, a monitor)."""


def announce(info: dict[str, Any], state_dir: Path, online: int) -> None:
    lines = [
        "",
        "视频接访演示系统已启动 · xinfang-video demo is running",
        f"  控制台 console : {info['console_url']}",
        f"  管理员 admin   : {info['admin']['username']} / {info['admin']['password']}",
        f"  演示用户 users  : {', '.join(SHOWN_USERS)} … (密码同上 same password)",
        f"  API            : {info['api_url']}",
        f"  MQTT broker    : {info['broker']['host']}:{info['broker']['port']}",
        f"  signaling      : {info['signaling_url']}/health",
        f"  终端 boxes ({online}/{len(info['edges'])} online):",
        *(f"    {e['node']:<16} {e['township_name']:<8} {e['kiosk_url']}" for e in info["edges"]),
        f"  details: {state_dir / 'demo.json'}",
        "按 Ctrl-C 停止 · Ctrl-C to stop",
    ]
    click.echo("\n".join(lines))


@click.command("demo")
@click.option(
    "--edges", default=3, show_default=True, type=click.IntRange(1, 200), help="simulated boxes"
)
@click.option(
    "--http-port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="console and API port (0 picks a free one)",
)
@click.option(
    "--state-dir",
    default="state/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="where the demo keeps its databases",
)
@click.option(
    "--admin-password",
    default=None,
    help="password of the admin and of every demo user (default: random, printed)",
)
@click.option(
    "--cases",
    default=300,
    show_default=True,
    type=click.IntRange(0, 100_000),
    help="generated cases with a workflow history, on a fresh state dir",
)
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
)
def demo(
    edges: int,
    http_port: int,
    state_dir: str,
    admin_password: str | None,
    cases: int,
    log_level: str,
) -> None:
    """Run broker, hub, signaling and N simulated boxes on loopback until Ctrl-C."""
    setup_logging(log_level)
    run_until_signal(lambda: run_demo(edges, http_port, Path(state_dir), admin_password, cases))
    click.echo("demo stopped")
