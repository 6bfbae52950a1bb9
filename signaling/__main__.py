"""``xfv signaling``: run the signaling server, check its config."""

from __future__ import annotations

import click

from runtime.cli import check_config_command, load_or_exit, run_until_signal
from runtime.logs import setup_logging
from signaling.config import SignalingConfig
from signaling.server import SignalingServer


@click.group("signaling")
def cli() -> None:
    """WebSocket signaling for live reception."""


@cli.command("run")
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False))
def run(config_file: str) -> None:
    """Run the signaling server until SIGINT or SIGTERM."""
    config = load_or_exit(config_file, SignalingConfig)
    setup_logging(config.log_level)
    run_until_signal(SignalingServer(config).run)


cli.add_command(check_config_command(SignalingConfig))

if __name__ == "__main__":
    cli()
