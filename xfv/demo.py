"""``xfv demo``: broker, hub, signaling and N simulated boxes in one process, on loopback.

Everything binds 127.0.0.1 and zeroconf stays on the loopback interface, so the demo touches
no network. ``DIR/demo.json`` tells scripts where everything is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import click

from contracts.access import Role
from contracts.places import place_name, townships_of
from edge.app import EdgeApp
from edge.config import EdgeConfig, TelemetryConfig
from hub.accounts import hash_password
from hub.app import HubApp
from hub.config import HubConfig
from hub.store.db import HubStore
from runtime.cli import run_until_signal
from runtime.config import DiscoveryConfig, HttpConfig, MqttConfig
from runtime.logs import setup_logging
from signaling.config import SignalingConfig
from signaling.server import SignalingServer
from xfv.broker import EmbeddedBroker

log = logging.getLogger(__name__)

CITY = "5101"  # 成都市, Sichuan
HUB_ID = "hub-5101"
ADMIN = "admin"
LOOPBACK = "127.0.0.1"


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


async def run_demo(edges: int, http_port: int, state_dir: Path, admin_password: str | None) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    password = admin_password or secrets.token_urlsafe(9)
    click.echo(f"xinfang-video demo: starting broker, hub, signaling and {edges} boxes…")
    async with EmbeddedBroker(LOOPBACK) as broker:
        hub_config = HubConfig(
            hub_id=HUB_ID,
            state_dir=state_dir / "hub",
            http=HttpConfig(host=LOOPBACK, port=http_port),
            mqtt=MqttConfig(
                host=broker.host,
                port=broker.port,
                username="hub",
                keepalive=10,
                reconnect_min=0.5,
                reconnect_max=5,
            ),
            discovery=DiscoveryConfig(interfaces=[LOOPBACK]),
        )
        async with HubStore(hub_config.database) as store:
            await store.add_user(
                ADMIN, hash_password(password), Role.ADMIN, CITY, "演示管理员", replace=True
            )
        hub = HubApp(hub_config)
        signaling = SignalingServer(SignalingConfig(http=HttpConfig(host=LOOPBACK, port=0)))
        boxes = [EdgeApp(c) for c in edge_configs(edges, state_dir, broker)]
        async with asyncio.TaskGroup() as tg:
            tg.create_task(hub.run(), name="hub")
            tg.create_task(signaling.run(), name="signaling")
            await hub.ready.wait()
            await signaling.ready.wait()
            for box in boxes:
                tg.create_task(box.run(), name=box.config.node_id)
            for box in boxes:
                await box.ready.wait()
            info = describe(hub, signaling, broker, boxes, password)
            (state_dir / "demo.json").write_text(json.dumps(info, ensure_ascii=False, indent=2))
            online = await wait_online(hub, edges)
            announce(info, state_dir, online)


def describe(
    hub: HubApp,
    signaling: SignalingServer,
    broker: EmbeddedBroker,
    boxes: list[EdgeApp],
    password: str,
) -> dict[str, Any]:
    base = f"http://{LOOPBACK}:{hub.http_port}"
    return {
        "console_url": base + "/",
        "api_url": base + "/api/v1",
        "admin": {"username": ADMIN, "password": password},
        "broker": {"host": broker.host, "port": broker.port},
        "signaling_url": f"http://{LOOPBACK}:{signaling.port}",
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


def announce(info: dict[str, Any], state_dir: Path, online: int) -> None:
    lines = [
        "",
        "视频接访演示系统已启动 · xinfang-video demo is running",
        f"  控制台 console : {info['console_url']}",
        f"  管理员 admin   : {info['admin']['username']} / {info['admin']['password']}",
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
@click.option("--admin-password", default=None, help="admin password (default: random, printed)")
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
)
def demo(
    edges: int, http_port: int, state_dir: str, admin_password: str | None, log_level: str
) -> None:
    """Run broker, hub, signaling and N simulated boxes on loopback until Ctrl-C."""
    setup_logging(log_level)
    run_until_signal(lambda: run_demo(edges, http_port, Path(state_dir), admin_password))
    click.echo("demo stopped")
