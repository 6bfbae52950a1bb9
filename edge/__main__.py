"""``xfv edge``: run the box, check its config."""

from __future__ import annotations

import click

from edge.app import EdgeApp
from edge.config import EdgeConfig
from runtime.cli import check_config_command, load_or_exit, run_until_signal
from runtime.logs import setup_logging


@click.group("edge")
def cli() -> None:
    """The township box."""


@cli.command("run")
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="the box's edge.toml",
)
def run(config_file: str) -> None:
    """Run the box until SIGINT or SIGTERM."""
    config = load_or_exit(config_file, EdgeConfig)
    setup_logging(config.log_level)
    run_until_signal(EdgeApp(config).run)


cli.add_command(check_config_command(EdgeConfig))

if __name__ == "__main__":
    cli()
