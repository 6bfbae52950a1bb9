"""``xfv hub seed-org``: load the responsible units and the users of the province, city and
county tiers from CSV (the shipped tables by default) into a hub's database."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import click

from hub.config import HubConfig
from hub.org import MIN_PASSWORD, OrgError, OrgResult, UserRow, apply_org, load_units, load_users
from hub.store.db import HubStore
from runtime.cli import load_or_exit


def read_password_file(path: Path, users: list[UserRow]) -> dict[str, str]:
    """``username:password`` lines (blank lines and ``#`` comments skipped) for users of
    ``users``. Problems name the line, never the password."""
    known = {u.username for u in users}
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise OrgError([f"{path}: cannot read: {exc}"]) from None
    out: dict[str, str] = {}
    problems = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        username, sep, password = line.partition(":")
        username = username.strip()
        if not sep or not username:
            problems.append(f"{path}:{n}: expected username:password")
        elif username not in known:
            problems.append(f"{path}:{n}: no user {username!r} in the users table")
        elif username in out:
            problems.append(f"{path}:{n}: a second password for {username!r}")
        elif len(password) < MIN_PASSWORD:
            problems.append(
                f"{path}:{n}: the password of {username!r} has fewer than {MIN_PASSWORD} characters"
            )
        else:
            out[username] = password
    if problems:
        raise OrgError(problems)
    return out


def _summary(what: str, added: list[str], updated: list[str], unchanged: int) -> str:
    return f"{what}: {len(added)} added, {len(updated)} updated, {unchanged} unchanged"


@click.command("seed-org")
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--units",
    "units_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="units CSV (id,name_zh,name_en,jurisdiction,supervisor); default: the shipped table",
)
@click.option(
    "--users",
    "users_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="users CSV (username,role,jurisdiction,unit_id,display_name); default: the shipped table",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="username:password lines; a listed user gets that password, existing users too. "
    "New users not listed get a generated password, printed once",
)
def seed_org(
    config_file: str, units_file: Path | None, users_file: Path | None, password_file: Path | None
) -> None:
    """Add or update the responsible units and the users of the CSV tables (idempotent;
    existing users keep their passwords unless listed in --password-file)."""
    config = load_or_exit(config_file, HubConfig)
    try:
        units = load_units(units_file)
        users = load_users(users_file, units)
        given = read_password_file(password_file, users) if password_file else {}
    except OrgError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(2) from None
    generated: dict[str, str] = {}

    def password(username: str) -> str:
        if username in given:
            return given[username]
        generated[username] = secrets.token_urlsafe(12)
        return generated[username]

    async def seed() -> OrgResult:
        async with HubStore(config.database) as store:
            result = await store.run(lambda db: apply_org(db, units, users, password, reset=given))
            await store.audit(
                "cli",
                "org.seed",
                units_added=result.units_added,
                units_updated=result.units_updated,
                users_added=result.users_added,
                users_updated=result.users_updated,
                passwords_set=result.passwords_set,
            )
            return result

    try:
        result = asyncio.run(seed())
    except OrgError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(2) from None
    click.echo(_summary("units", result.units_added, result.units_updated, result.units_unchanged))
    click.echo(_summary("users", result.users_added, result.users_updated, result.users_unchanged))
    if generated:
        click.echo("generated passwords (shown once, store them now):")
        for username, secret in generated.items():
            click.echo(f"{username}:{secret}")
