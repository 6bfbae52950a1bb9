"""``xfv signaling``: run the signaling server, check its config."""

from __future__ import annotations

import click

from runtime.cli import check_config_command, run_command
from signaling.config import SignalingConfig
from signaling.server import SignalingServer


@click.group("signaling")
def cli() -> None:
    """WebSocket signaling for live reception."""


cli.add_command(run_command(SignalingConfig, SignalingServer, "the signaling server"))
cli.add_command(check_config_command(SignalingConfig))

if __name__ == "__main__":
    cli()
