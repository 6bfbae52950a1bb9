"""``xfv edge``: run the box, check its config."""

from __future__ import annotations

import click

from edge.app import EdgeApp
from edge.config import EdgeConfig
from runtime.cli import check_config_command, run_command


@click.group("edge")
def cli() -> None:
    """The township box."""


cli.add_command(run_command(EdgeConfig, EdgeApp, "the box"))
cli.add_command(check_config_command(EdgeConfig))

if __name__ == "__main__":
    cli()
