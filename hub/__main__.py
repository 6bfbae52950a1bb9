"""``xfv hub``: run the hub, check its config, add users, back up (and ``provision-box``,
which ``xfv.provision`` adds, since it needs the box's config model too)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from contracts.access import Role
from contracts.chain import ChainBreak, verify_chain
from contracts.divisions import parse_division
from contracts.errors import ContractError
from contracts.events import EventEnvelope
from contracts.wire import decode
from hub.accounts import hash_password
from hub.app import HubApp, pii_key
from hub.backup import BackupError, backup, backups
from hub.config import HubConfig
from hub.errors import UnitProblem, UserExists
from hub.org_cli import seed_org
from hub.pii import PiiError, PiiVault
from hub.store.db import HubStore
from runtime.cli import check_config_command, load_or_exit, run_command


@click.group("hub")
def cli() -> None:
    """The city hub."""


@cli.command("add-user")
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False))
@click.option("--username", required=True)
@click.option(
    "--role", required=True, type=click.Choice([r.value for r in Role if r is not Role.BOX])
)
@click.option(
    "--jurisdiction",
    required=True,
    help="division code the user covers, e.g. 5101 (a city) or 510104 (a county)",
)
@click.option("--display-name", default="", help="name shown in the console")
@click.option(
    "--unit",
    "unit_id",
    default=None,
    help="the responsible unit (责任单位) the user works for; required for role unit",
)
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
    unit_id: str | None,
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
                username,
                hash_password(password),
                Role(role),
                jur,
                display_name,
                replace=replace,
                unit_id=unit_id,
            )
            await store.audit(
                "cli", "user.add", target=username, role=role, jurisdiction=jur, unit=unit_id
            )

    try:
        asyncio.run(add())
    except UserExists as exc:
        raise click.ClickException(f"{exc}; pass --replace to overwrite") from None
    except UnitProblem as exc:
        raise click.BadParameter(str(exc), param_hint="--unit") from None
    click.echo(f"user {username!r} ({role}, jurisdiction {jur}) saved")


@cli.command("verify-chain")
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False))
@click.option("--node", default=None, help="only this box")
def verify_chain_command(config_file: str, node: str | None) -> None:
    """Recompute every box's event chain; report the first break per box (exit 1 if any)."""
    config = load_or_exit(config_file, HubConfig)
    results = asyncio.run(verify_all(config, node))
    if not results:
        raise click.ClickException(f"no events stored for {node or 'any box'}")
    broken = 0
    for name, (count, fault) in results.items():
        if fault is None:
            click.echo(f"{name}: ok, {count} events")
        else:
            broken += 1
            click.echo(
                f"{name}: BROKEN at seq {fault.seq} (event #{fault.index + 1} of "
                f"{count}): {fault.reason}"
            )
    if broken:
        raise SystemExit(1)


async def verify_all(
    config: HubConfig, only: str | None
) -> dict[str, tuple[int, ChainBreak | None]]:
    vault = PiiVault(pii_key(config))
    out: dict[str, tuple[int, ChainBreak | None]] = {}
    async with HubStore(config.database) as store:
        nodes = [only] if only else await store.stream_nodes()
        for name in nodes:
            try:
                payloads = await store.event_payloads(vault, name)
            except PiiError as exc:  # a stored event was altered: AES-GCM refuses it
                out[name] = (0, ChainBreak(0, None, str(exc)))
                continue
            if not payloads:
                continue
            records = [decode(EventEnvelope, p).chain_record() for p in payloads]
            out[name] = (len(records), verify_chain(records))
    return out


@cli.command("backup")
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False))
@click.option("--dest", required=True, type=click.Path(file_okay=False), help="backup folder")
@click.option("--keep", default=14, show_default=True, type=click.IntRange(1, 10_000))
def backup_command(config_file: str, dest: str, keep: int) -> None:
    """Copy the hub database with SQLite's online backup (the hub keeps running), check the
    copy, and keep the newest KEEP backups in DEST."""
    config = load_or_exit(config_file, HubConfig)
    try:
        path = backup(config.database, Path(dest), keep)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup written: {path} ({len(backups(Path(dest)))} kept)")


cli.add_command(run_command(HubConfig, HubApp, "the hub"))
cli.add_command(check_config_command(HubConfig))
cli.add_command(seed_org)

if __name__ == "__main__":
    cli()
