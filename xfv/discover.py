"""``xfv discover``: the boxes and hubs announcing themselves on the LAN."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

import click

from contracts.places import place_name
from runtime.mdns import EDGE_SERVICE, HUB_SERVICE, Announced, browse


def row(a: Announced) -> dict[str, str]:
    p = a.properties
    kind = "hub" if a.service == HUB_SERVICE else "edge"
    township = p.get("township", "")
    return {
        "kind": kind,
        "id": p.get("hub") or p.get("node") or a.instance,
        "address": f"{a.addresses[0] if a.addresses else '?'}:{a.port}",
        "township": township,
        "place": place_name(township) if township else "",
        "version": p.get("version", ""),
    }


@click.command("discover")
@click.option("--seconds", default=3.0, show_default=True, help="how long to listen")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option(
    "--interface",
    "interfaces",
    multiple=True,
    help="IPv4 address of an interface to use (repeatable); default: all",
)
def discover(seconds: float, as_json: bool, interfaces: tuple[str, ...]) -> None:
    """List the boxes and hubs announcing on the LAN (zeroconf)."""
    found = asyncio.run(
        browse([EDGE_SERVICE, HUB_SERVICE], seconds, list(interfaces) if interfaces else "all")
    )
    if as_json:
        click.echo(
            json.dumps([{**row(a), "raw": asdict(a)} for a in found], ensure_ascii=False, indent=2)
        )
        return
    if not found:
        click.echo(f"nothing announced in {seconds:g}s")
        return
    rows = [row(a) for a in found]
    cols = ["kind", "id", "address", "township", "place", "version"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in cols))
    for r in rows:
        click.echo("  ".join(r[c].ljust(widths[c]) for c in cols))
