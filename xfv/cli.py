"""``xfv``: one command for every part."""

from __future__ import annotations

import click

from edge.__main__ import cli as edge_cli
from hub.__main__ import cli as hub_cli
from signaling.__main__ import cli as signaling_cli
from xfv.demo import demo
from xfv.discover import discover
from xfv.provision import provision_box_command


@click.group()
@click.version_option(package_name="xinfang-video", prog_name="xfv")
def main() -> None:
    """xinfang-video: video petition reception (视频接访) for township boxes and city hubs."""


hub_cli.add_command(provision_box_command)
main.add_command(edge_cli)
main.add_command(hub_cli)
main.add_command(signaling_cli)
main.add_command(discover)
main.add_command(demo)
