"""``xfv edge``: run the box, check its config."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import click

from edge.app import EdgeApp
from edge.config import EdgeConfig
from edge.store.db import EdgeStore
from runtime.cli import check_config_command, load_or_exit, run_command


@click.group("edge")
def cli() -> None:
    """The township box."""


@cli.command("status")
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="the box's edge.toml",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def status(config_file: str, as_json: bool) -> None:
    """The box's link, outbox depth and last ack (from its database and its running process)."""
    config = load_or_exit(config_file, EdgeConfig)
    report = asyncio.run(box_status(config))
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    link = report["link"]
    click.echo(f"box        {config.node_id} ({config.township})")
    click.echo(f"process    {'running' if link else 'not running'}")
    if link:
        state = "connected" if link["connected"] else "disconnected"
        hub = "hub online" if link["hub_online"] else "hub not seen"
        click.echo(f"link       {state} to {link['broker'] or '?'}, {hub}")
    click.echo(
        f"outbox     head {report['outbox_head']}, acked through "
        f"{report['acked_through']}, {report['outbox_depth']} waiting"
    )
    click.echo(f"last event {report['last_event_at'] or '-'}")


async def box_status(config: EdgeConfig) -> dict[str, Any]:
    async with EdgeStore(config.database, config.node_id) as store:
        state = await store.sync_state()
    link = None
    host = "127.0.0.1" if config.kiosk.host in ("0.0.0.0", "::") else config.kiosk.host
    if config.kiosk.port:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
                url = f"http://{host}:{config.kiosk.port}/api/v1/sync"
                async with session.get(url) as resp:
                    link = await resp.json() if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            link = None
    return {
        "node": config.node_id,
        "outbox_head": state.outbox_head,
        "acked_through": state.acked_through,
        "outbox_depth": state.depth,
        "last_event_at": state.last_event_at,
        "link": link,
    }


cli.add_command(run_command(EdgeConfig, EdgeApp, "the box"))
cli.add_command(check_config_command(EdgeConfig))

if __name__ == "__main__":
    cli()
