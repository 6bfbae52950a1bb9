"""Seed data: the division table of Chengdu, the responsible units and the users of the
province, city and county tiers (``hub.org``, ``xfv hub seed-org``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from contracts.access import Role
from contracts.places import place_name, shipped_places
from hub.accounts import verify_password
from hub.org import OrgError, UnitRow, UserRow, apply_org, load_units, load_users
from hub.org_cli import seed_org
from hub.store.migrations import migrations
from runtime.sqlite import open_database
from tests.support.procs import Hub, http_json

CHENGDU_COUNTIES = {
    "510104": "锦江区",
    "510105": "青羊区",
    "510106": "金牛区",
    "510107": "武侯区",
    "510108": "成华区",
    "510112": "龙泉驿区",
    "510113": "青白江区",
    "510114": "新都区",
    "510115": "温江区",
    "510116": "双流区",
    "510121": "金堂县",
    "510124": "郫县",  # 郫都区 (510117) only from the 2017 edition on
    "510129": "大邑县",
    "510131": "蒲江县",
    "510132": "新津县",
    "510181": "都江堰市",
    "510182": "彭州市",
    "510183": "邛崃市",
    "510184": "崇州市",
    "510185": "简阳市",
}

UNITS_HEADER = "id,name_zh,name_en,jurisdiction,supervisor\n"
USERS_HEADER = "username,role,jurisdiction,unit_id,display_name\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def problems_of(fn: Any, *args: Any) -> list[str]:
    with pytest.raises(OrgError) as caught:
        fn(*args)
    return caught.value.problems


def test_chengdu_has_its_20_county_level_divisions_with_names() -> None:
    places = shipped_places()
    counties = {k: p.name_zh for k, p in places.items() if len(k) == 6 and k.startswith("5101")}
    assert counties == CHENGDU_COUNTIES
    assert place_name("510181", "en") == "Dujiangyan City"
    assert place_name("510121", "en") == "Jintang County"


def test_townships_lie_under_at_least_four_counties_and_have_english_names() -> None:
    towns = [p for k, p in shipped_places().items() if len(k) == 9]
    counties = {p.code.code[:6] for p in towns}
    assert len(counties) >= 4
    assert counties <= set(CHENGDU_COUNTIES)
    assert place_name("510105001") == "太升路街道"
    assert place_name("510124102", "en") == "Xipu Town"
    assert all(p.name_en.isascii() for p in towns)


def test_the_shipped_tables_load_and_cover_the_three_tiers() -> None:
    units = load_units()
    users = load_users(None, units)
    assert {u.id for u in units} >= {"5101-xfj", "510104-xfj", "510104-zjj", "510105-zjj"}
    assert next(u for u in units if u.id == "510104-zjj").name_zh == "锦江区住房和城乡建设局"
    tiers = {len(u.jurisdiction) for u in users}
    assert tiers >= {2, 4, 6}
    assert {u.role for u in users} == {
        Role.OFFICIAL,
        Role.PETITION_OFFICE,
        Role.UNIT,
        Role.MONITOR,
    }
    assert {u.jurisdiction for u in users} >= {"51", "5101", "510104", "510105"}
    for unit_user in (u for u in users if u.role is Role.UNIT):
        unit = next(x for x in units if x.id == unit_user.unit_id)
        assert unit.jurisdiction.startswith(unit_user.jurisdiction)


def test_bad_rows_are_reported_with_file_line_column_and_value(tmp_path: Path) -> None:
    path = write(
        tmp_path / "units.csv",
        UNITS_HEADER
        + "510104-xfj,锦江区信访局,Jinjiang Letters and Calls,510104,\n"
        + "cd-x,某局,Some bureau,5199,\n"
        + "Bad Id,某局,Some bureau,5101,\n"
        + "510104-xfj,again,again,510104,\n",
    )
    problems = problems_of(load_units, path)
    assert len(problems) == 3
    assert problems[0].startswith(f"{path}:3: jurisdiction: ")
    assert problems[0].endswith("(got '5199')")
    assert problems[1].startswith(f"{path}:4: id: ")
    assert problems[1].endswith("(got 'Bad Id')")
    assert problems[2] == f"{path}:5: id: duplicate of line 2 (got '510104-xfj')"


def test_bad_user_rows_name_the_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "users.csv",
        USERS_HEADER
        + "a,chief,5101,,\n"
        + "b,unit,5101,,\n"
        + "c,official,510104999,,\n"
        + "d,box,5101,,\n",
    )
    problems = problems_of(load_users, path)
    assert [p.split(": ")[0:2] for p in problems] == [
        [f"{path}:2", "role"],
        [f"{path}:3", "unit_id"],
        [f"{path}:4", "jurisdiction"],
        [f"{path}:5", "role"],
    ]
    assert "(got 'chief')" in problems[0]
    assert "510104999" in problems[2]


def test_a_missing_column_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path / "units.csv", "id,name_zh,jurisdiction\nx,y,5101\n")
    assert problems_of(load_units, path) == [
        f"{path}:1: missing column 'name_en'",
        f"{path}:1: missing column 'supervisor'",
    ]


def test_a_unit_user_outside_the_units_jurisdiction_is_refused(tmp_path: Path) -> None:
    units = load_units()
    path = write(
        tmp_path / "users.csv",
        USERS_HEADER
        + "qy_a,unit,510105,510104-zjj,青羊区某人\n"
        + "jj_town,unit,510104022,510104-zjj,\n"
        + "jj_ok,unit,510104,510104022-jdb,\n"
        + "nobody,unit,510104,no-such-unit,\n",
    )
    problems = problems_of(load_users, path, units)
    assert problems == [
        f"{path}:2: unit_id: unit '510104-zjj' serves 510104, outside the user's "
        "jurisdiction 510105 (got '510104-zjj')",
        f"{path}:3: unit_id: unit '510104-zjj' serves 510104, outside the user's "
        "jurisdiction 510104022 (got '510104-zjj')",
        f"{path}:5: unit_id: no such unit (got 'no-such-unit')",
    ]


def fresh_db(tmp_path: Path) -> Any:
    return open_database(tmp_path / "state" / "hub.db", migrations)


def dump(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        for table in ("units", "users")
    }


def test_apply_org_twice_changes_nothing(tmp_path: Path) -> None:
    db = fresh_db(tmp_path)
    units, users = load_units(), load_users()
    first = apply_org(db, units, users, lambda name: f"pw-of-{name}")
    assert len(first.units_added) == len(units)
    assert len(first.users_added) == len(users)
    before = dump(db)
    asked: list[str] = []
    second = apply_org(db, units, users, lambda name: asked.append(name) or "x" * 8)
    assert dump(db) == before
    assert asked == []
    assert (second.units_added, second.units_updated) == ([], [])
    assert (second.users_added, second.users_updated) == ([], [])
    assert (second.units_unchanged, second.users_unchanged) == (len(units), len(users))
    row = db.execute(
        "SELECT role, jurisdiction, unit_id, password_hash FROM users WHERE username = 'jj_zjj'"
    ).fetchone()
    assert row[:3] == ("unit", "510104", "510104-zjj")
    assert verify_password(row[3], "pw-of-jj_zjj")


def test_apply_org_updates_changed_rows_and_keeps_passwords(tmp_path: Path) -> None:
    db = fresh_db(tmp_path)
    unit = UnitRow(id="u1", name_zh="甲局", name_en="A", jurisdiction="510104")
    user = UserRow(username="p1", role=Role.UNIT, jurisdiction="510104", unit_id="u1")
    apply_org(db, [unit], [user], lambda _: "first-password")
    renamed = unit.model_copy(update={"name_zh": "乙局"})
    moved = user.model_copy(update={"display_name": "新名字"})
    result = apply_org(db, [renamed], [moved], lambda _: "never-used-pw")
    assert (result.units_updated, result.users_updated) == (["u1"], ["p1"])
    assert db.execute("SELECT name_zh FROM units").fetchone() == ("乙局",)
    name, pw_hash = db.execute("SELECT display_name, password_hash FROM users").fetchone()
    assert name == "新名字"
    assert verify_password(pw_hash, "first-password")
    apply_org(db, [renamed], [moved], lambda _: "second-password", reset={"p1"})
    (pw_hash,) = db.execute("SELECT password_hash FROM users").fetchone()
    assert verify_password(pw_hash, "second-password")


def test_apply_org_refuses_a_user_whose_unit_lies_outside(tmp_path: Path) -> None:
    db = fresh_db(tmp_path)
    units = load_units()
    stray = UserRow(username="qy_x", role=Role.UNIT, jurisdiction="510105", unit_id="510104-rsj")
    problems = problems_of(apply_org, db, units, [stray], lambda _: "password-1")
    assert problems == [
        "user 'qy_x': unit_id: unit '510104-rsj' serves 510104, outside the user's "
        "jurisdiction 510105 (got '510104-rsj')",
        # the shipped units name supervisors that this one-user table lacks
        *[
            f"unit {u.id!r}: supervisor: no such user (got {u.supervisor!r})"
            for u in units
            if u.supervisor
        ],
    ]
    assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM units").fetchone() == (0,)


def test_seed_org_creates_users_who_log_in_to_a_running_hub(hub: Hub, tmp_path: Path) -> None:
    pw_file = write(tmp_path / "passwords", "# given\njj_zjj:zjj-secret-1\n\ncd_official: spaced\n")
    bad = CliRunner().invoke(
        seed_org, ["--config", str(hub.config_path), "--password-file", str(pw_file)]
    )
    assert bad.exit_code == 2
    assert f"{pw_file}:4: the password of 'cd_official' has fewer than 8" in bad.stderr
    assert "spaced" not in bad.output

    write(pw_file, "# given\njj_zjj:zjj-secret-1\ncd_official:city-secret-1\n")
    result = CliRunner().invoke(
        seed_org, ["--config", str(hub.config_path), "--password-file", str(pw_file)]
    )
    assert result.exit_code == 0, result.output
    users = load_users()
    assert f"users: {len(users)} added, 0 updated, 0 unchanged" in result.stdout
    generated = dict(
        line.split(":", 1) for line in result.stdout.splitlines() if line.startswith("qy_")
    )
    assert set(generated) == {"qy_official", "qy_office", "qy_zjj", "qy_tsl"}

    for username, password, role, jur in [
        ("jj_zjj", "zjj-secret-1", "unit", "510104"),
        ("cd_official", "city-secret-1", "official", "5101"),
        ("qy_tsl", generated["qy_tsl"], "unit", "510105001"),
    ]:
        status, body = http_json(
            hub.base + "/api/v1/login", body={"username": username, "password": password}
        )
        assert status == 200, body
        assert (body["role"], body["jurisdiction"]) == (role, jur)

    token = hub.login("jj_zjj", "zjj-secret-1")
    status, _ = http_json(hub.base + "/api/v1/cases", token)
    assert status == 200

    again = CliRunner().invoke(seed_org, ["--config", str(hub.config_path)])
    assert again.exit_code == 0, again.output
    assert f"users: 0 added, 0 updated, {len(users)} unchanged" in again.stdout
    assert "generated passwords" not in again.stdout
    assert hub.login("qy_tsl", generated["qy_tsl"])  # kept: not listed in a password file
    with sqlite3.connect(hub.dir / "state" / "hub.db") as conn:
        audit = conn.execute("SELECT count(*) FROM audit WHERE action = 'org.seed'").fetchone()
    assert audit == (2,)
