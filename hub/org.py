"""The organisation a hub serves: responsible units (责任单位) with their jurisdiction, and the
people of the province, city and county tiers, seeded from CSV files.

The shipped tables (``hub/data/units.csv``, ``hub/data/users.csv``) describe Chengdu, Sichuan
over the division table of :mod:`contracts.places`; a hub may load its own files instead. Every
bad row is reported with its file, line, column and value, all of them at once
(:class:`OrgError`). :func:`apply_org` writes the rows into the ``units`` and ``users`` tables:
an idempotent upsert that leaves existing users' passwords alone unless asked.

CSV columns:

- units: ``id,name_zh,name_en,jurisdiction,supervisor`` (``supervisor``: the username reminded
  of the unit's deadlines; may be empty)
- users: ``username,role,jurisdiction,unit_id,display_name`` (``unit_id`` required for the
  ``unit`` role; the unit must lie inside the user's jurisdiction). No passwords.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sqlite_utils import Database

from contracts.access import Role
from contracts.divisions import parse_division
from contracts.errors import ContractError
from contracts.places import TABLE_VERSION, shipped_places
from hub.accounts import hash_password
from hub.errors import HubError
from hub.store.db import now_iso
from runtime.sqlite import transaction

SHIPPED_UNITS = "data/units.csv"
SHIPPED_USERS = "data/users.csv"
MIN_PASSWORD = 8


class OrgError(HubError):
    """Units or users that cannot be loaded or applied; ``problems`` lists each, one line
    apiece (``<file>:<line>: <column>: <message> (got <value>)``)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _known_division(value: str) -> str:
    try:
        code = parse_division(value).code
    except ContractError as exc:
        raise ValueError(str(exc)) from None
    if code not in shipped_places():
        raise ValueError(f"not a division of the table {TABLE_VERSION!r}")
    return code


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


Division = Annotated[str, AfterValidator(_known_division)]
UnitId = Annotated[str, Field(pattern=r"^[0-9a-z][0-9a-z_-]{0,63}$")]
Username = Annotated[str, Field(pattern=r"^[0-9a-z][0-9a-z_.-]{0,63}$")]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def key(self) -> str:
        """The row's identity (first column)."""
        return str(getattr(self, next(iter(type(self).model_fields))))


class UnitRow(_Row):
    """A responsible unit (责任单位): cases routed to it are handled by its ``unit`` users."""

    id: UnitId = Field(description="stable id, e.g. 510104-zjj")
    name_zh: Text
    name_en: Text
    jurisdiction: Division = Field(description="the division it serves (a code prefix)")
    supervisor: Annotated[Username | None, BeforeValidator(_empty_is_none)] = Field(
        default=None, description="username reminded of the unit's deadlines"
    )


class UserRow(_Row):
    """A console/API user, without a password."""

    username: Username
    role: Role
    jurisdiction: Division
    unit_id: Annotated[UnitId | None, BeforeValidator(_empty_is_none)] = None
    display_name: str = Field(default="", max_length=100)

    @field_validator("role")
    @classmethod
    def _person(cls, value: Role) -> Role:
        if value is Role.BOX:
            raise ValueError("'box' is a township box's role, not a person's")
        return value

    @field_validator("unit_id")
    @classmethod
    def _unit_role(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("role") is Role.UNIT:
            raise ValueError("a user of role 'unit' needs the unit it works for")
        return value


R = TypeVar("R", bound=_Row)


def _rows(text: str, source: str, model: type[R]) -> tuple[list[tuple[int, R]], list[str]]:
    """Rows of a CSV (with their line numbers) and the problems of the bad ones."""
    reader = csv.DictReader(io.StringIO(text))
    columns = list(model.model_fields)
    header = reader.fieldnames or []
    problems = [f"{source}:1: missing column {c!r}" for c in columns if c not in header]
    problems += [f"{source}:1: unknown column {c!r}" for c in header if c not in columns]
    if problems:
        return [], problems
    rows: list[tuple[int, R]] = []
    seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        if None in raw or any(v is None for v in raw.values()):
            problems.append(
                f"{source}:{line}: expected {len(columns)} columns: {','.join(columns)}"
            )
            continue
        values = {k: v.strip() for k, v in raw.items()}
        try:
            row = model.model_validate(values)
        except ValidationError as exc:
            for err in exc.errors():
                column = str(err["loc"][0]) if err["loc"] else columns[0]
                problems.append(
                    f"{source}:{line}: {column}: {err['msg']} (got {values.get(column)!r})"
                )
            continue
        key = row.key
        if key in seen:
            problems.append(
                f"{source}:{line}: {columns[0]}: duplicate of line {seen[key]} (got {key!r})"
            )
            continue
        seen[key] = line
        rows.append((line, row))
    return rows, problems


def _text(path: Path | None, shipped: str) -> tuple[str, str]:
    if path is None:
        return resources.files("hub").joinpath(shipped).read_text("utf-8"), f"hub/{shipped}"
    try:
        return path.read_text("utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise OrgError([f"{path}: cannot read: {exc}"]) from None


def load_units(path: Path | None = None) -> list[UnitRow]:
    """The units of the CSV at ``path`` (the shipped table when ``None``)."""
    text, source = _text(path, SHIPPED_UNITS)
    rows, problems = _rows(text, source, UnitRow)
    if problems:
        raise OrgError(problems)
    return [row for _, row in rows]


def load_users(path: Path | None = None, units: Sequence[UnitRow] | None = None) -> list[UserRow]:
    """The users of the CSV at ``path`` (the shipped table when ``None``). With ``units``,
    each user's unit must be one of them and lie inside the user's jurisdiction."""
    text, source = _text(path, SHIPPED_USERS)
    rows, problems = _rows(text, source, UserRow)
    if units is not None:
        served = {u.id: u.jurisdiction for u in units}
        for line, user in rows:
            if problem := _unit_problem(user, served):
                problems.append(f"{source}:{line}: unit_id: {problem} (got {user.unit_id!r})")
    if problems:
        raise OrgError(problems)
    return [row for _, row in rows]


def _unit_problem(user: UserRow, served: dict[str, str]) -> str | None:
    """Why ``user``'s unit is wrong, given each unit's jurisdiction by id; ``None`` if fine."""
    if user.unit_id is None:
        return None
    jurisdiction = served.get(user.unit_id)
    if jurisdiction is None:
        return "no such unit"
    if not jurisdiction.startswith(user.jurisdiction):
        return (
            f"unit {user.unit_id!r} serves {jurisdiction}, outside the user's jurisdiction "
            f"{user.jurisdiction}"
        )
    return None


@dataclass
class OrgResult:
    """What :func:`apply_org` changed."""

    units_added: list[str] = field(default_factory=list)
    units_updated: list[str] = field(default_factory=list)
    units_unchanged: int = 0
    users_added: list[str] = field(default_factory=list)
    users_updated: list[str] = field(default_factory=list)
    users_unchanged: int = 0
    passwords_set: list[str] = field(default_factory=list)


def _existing(db: Database, table: str, key: str, columns: str) -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in db.query(f"SELECT {key}, {columns} FROM {table}")}


def check_org(
    units: Sequence[UnitRow],
    users: Sequence[UserRow],
    known_units: dict[str, str] | None = None,
    known_users: Collection[str] = (),
) -> list[str]:
    """Problems between the two tables: a user's unit missing or outside their jurisdiction,
    a unit's supervisor who is no user. ``known_units`` (id: jurisdiction) and
    ``known_users``: what the database holds already."""
    served = {**(known_units or {}), **{u.id: u.jurisdiction for u in units}}
    problems = []
    for user in users:
        if problem := _unit_problem(user, served):
            problems.append(f"user {user.username!r}: unit_id: {problem} (got {user.unit_id!r})")
    usernames = {u.username for u in users} | set(known_users)
    for unit in units:
        if unit.supervisor is not None and unit.supervisor not in usernames:
            problems.append(f"unit {unit.id!r}: supervisor: no such user (got {unit.supervisor!r})")
    return problems


def apply_org(
    db: Database,
    units: Sequence[UnitRow],
    users: Sequence[UserRow],
    passwords: Callable[[str], str],
    *,
    reset: Collection[str] = (),
) -> OrgResult:
    """Upsert ``units`` and ``users`` (by id and username) in one transaction; rows of the
    database that the tables do not name are left alone, and so is everything that already
    matches, so applying the same tables twice changes nothing.

    ``passwords(username)`` gives the password of each new user and of each existing user in
    ``reset``; other existing users keep theirs (and their ``created_at``, ``disabled``)."""
    result = OrgResult()
    old_units = _existing(db, "units", "id", "name_zh, name_en, jurisdiction, supervisor")
    old_users = _existing(db, "users", "username", "role, jurisdiction, unit_id, display_name")
    known = {k: str(v["jurisdiction"]) for k, v in old_units.items()}
    problems = check_org(units, users, known, old_users)
    hashes: dict[str, str] = {}
    for user in users:
        if user.username not in old_users or user.username in reset:
            password = passwords(user.username)
            if len(password) < MIN_PASSWORD:
                problems.append(
                    f"user {user.username!r}: password has fewer than {MIN_PASSWORD} characters"
                )
                continue
            hashes[user.username] = hash_password(password)
    if problems:
        raise OrgError(problems)
    now = now_iso()
    with transaction(db):
        for unit in units:
            values = unit.model_dump()
            old = old_units.get(unit.id)
            if old is None:
                db.execute(
                    "INSERT INTO units (id, name_zh, name_en, jurisdiction, supervisor, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [*values.values(), now],
                )
                result.units_added.append(unit.id)
            elif old != values:
                db.execute(
                    "UPDATE units SET name_zh = ?, name_en = ?, jurisdiction = ?, "
                    "supervisor = ? WHERE id = ?",
                    [unit.name_zh, unit.name_en, unit.jurisdiction, unit.supervisor, unit.id],
                )
                result.units_updated.append(unit.id)
            else:
                result.units_unchanged += 1
        for user in users:
            values = {
                "username": user.username,
                "role": user.role.value,
                "jurisdiction": user.jurisdiction,
                "unit_id": user.unit_id,
                "display_name": user.display_name or user.username,
            }
            old = old_users.get(user.username)
            if old is None:
                db.execute(
                    "INSERT INTO users (username, role, jurisdiction, unit_id, display_name, "
                    "password_hash, created_at, disabled) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                    [*values.values(), hashes[user.username], now],
                )
                result.users_added.append(user.username)
            elif old != values:
                db.execute(
                    "UPDATE users SET role = ?, jurisdiction = ?, unit_id = ?, display_name = ? "
                    "WHERE username = ?",
                    [*list(values.values())[1:], user.username],
                )
                result.users_updated.append(user.username)
            else:
                result.users_unchanged += 1
            if old is not None and user.username in hashes:
                db.execute(
                    "UPDATE users SET password_hash = ? WHERE username = ?",
                    [hashes[user.username], user.username],
                )
        result.passwords_set = sorted(hashes)
    return result
