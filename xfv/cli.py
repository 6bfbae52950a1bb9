"""``xfv``: one command for every part.

Each part's commands are imported only when one of them runs: a box starting ``xfv edge run``
does not import the hub (its workflow, reports and spreadsheet writer), which took about a
second of a box's start-up before its first event went out.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import click


def _hub() -> click.Command:
    from hub.__main__ import cli
    from xfv.provision import provision_box_command

    cli.add_command(provision_box_command)
    return cli


def _from(module: str, name: str) -> Callable[[], click.Command]:
    def load() -> click.Command:
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command

    return load


COMMANDS: dict[str, Callable[[], click.Command]] = {
    "edge": _from("edge.__main__", "cli"),
    "hub": _hub,
    "signaling": _from("signaling.__main__", "cli"),
    "discover": _from("xfv.discover", "discover"),
    "demo": _from("xfv.demo", "demo"),
}
"""Each subcommand's name and how to load it."""


class LazyGroup(click.Group):
    """A group whose subcommands are loaded from ``COMMANDS`` when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(COMMANDS[cmd_name](), cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup)
@click.version_option(package_name="xinfang-video", prog_name="xfv")
def main() -> None:
    """xinfang-video: video petition reception (视频接访) for township boxes and city hubs."""
