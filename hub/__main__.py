"""``xfv hub``: run the hub, check its config, add users."""

from __future__ import annotations

import asyncio

import click

from contracts.access import Role
from contracts.divisions import parse_division
from contracts.errors import ContractError
from hub.accounts import hash_password
from hub.app import HubApp
from hub.config import HubConfig
from hub.errors import UserExists
from hub.store.db import HubStore
from runtime.cli import check_config_command, load_or_exit, run_command


@click.group("hub")
def cli() -> None:
    """The city hub."""


@cli.command("add-user")
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False))
@click.option("--username", required=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option(
    "--jurisdiction",
    required=True,
    help="division code the user covers, e.g. 5101 (a city) or 510104 (a county)",
)
@click.option("--display-name", default="", help="name shown in the console")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="prompted for when not given",
)
@click.option("--replace", is_flag=True, help="overwrite an existing user of that name")
def add_user(
    config_file: str,
    username: str,
    role: str,
    jurisdiction: str,
    display_name: str,
    password: str,
    replace: bool,
) -> None:
    """Create a console/API user with a role and a jurisdiction."""
    config = load_or_exit(config_file, HubConfig)
    try:
        jur = parse_division(jurisdiction).code
    except ContractError as exc:
        raise click.BadParameter(str(exc), param_hint="--jurisdiction") from None
    if len(password) < 8:
        raise click.BadParameter("must have at least 8 characters", param_hint="--password")

    async def add() -> None:
        async with HubStore(config.database) as store:
            await store.add_user(
                username, hash_password(password), Role(role), jur, display_name, replace=replace
            )
            await store.audit("cli", "user.add", target=username, role=role, jurisdiction=jur)

    try:
        asyncio.run(add())
    except UserExists as exc:
        raise click.ClickException(f"{exc}; pass --replace to overwrite") from None
    click.echo(f"user {username!r} ({role}, jurisdiction {jur}) saved")


cli.add_command(run_command(HubConfig, HubApp, "the hub"))
cli.add_command(check_config_command(HubConfig))

if __name__ == "__main__":
    cli()
