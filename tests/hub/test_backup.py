"""``xfv hub backup``: online copies of the hub database, checked, the newest N kept."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.__main__ import cli
from hub.backup import BackupError, backup, backups
from hub.store.migrations import migrations
from runtime.sqlite import open_database


def hub_db(state: Path) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    db = open_database(state / "hub.db", migrations)
    with db.conn:
        db.conn.executemany(
            "INSERT INTO quarantine (received_at, topic, node, reason, payload) VALUES (?,?,?,?,?)",
            [
                ("2026-11-21T00:00:00Z", "t", "box-a", f"reason {i}", b"x" * 500)
                for i in range(2000)
            ],
        )
    db.close()
    return state / "hub.db"


def rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])


def test_the_cli_keeps_the_newest_backups(tmp_path: Path) -> None:
    hub_db(tmp_path / "state")
    config = tmp_path / "hub.toml"
    config.write_text(
        f'hub_id = "hub-5101"\nstate_dir = "{tmp_path / "state"}"\n[mqtt]\nhost = "127.0.0.1"\n'
    )
    dest = tmp_path / "backups"
    for _ in range(3):
        result = CliRunner().invoke(
            cli, ["backup", "--config", str(config), "--dest", str(dest), "--keep", "2"]
        )
        assert result.exit_code == 0, result.output
        assert "backup written" in result.output
    kept = backups(dest)
    assert len(kept) == 2
    assert all(rows(p) == 2000 for p in kept)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in kept)
    assert not list(dest.glob(".*partial"))


def test_a_backup_taken_while_the_hub_writes_is_whole(tmp_path: Path) -> None:
    database = hub_db(tmp_path / "state")
    stop = threading.Event()

    def write() -> None:
        conn = sqlite3.connect(database, timeout=30)
        while not stop.is_set():
            with conn:
                conn.execute(
                    "INSERT INTO quarantine (received_at, topic, reason, payload) "
                    "VALUES ('now', 't', 'live', ?)",
                    [b"y" * 2000],
                )
        conn.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        copy = backup(database, tmp_path / "backups", keep=5)
    finally:
        stop.set()
        writer.join()
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert 2000 <= rows(copy) <= rows(database)


def test_retention_drops_the_oldest(tmp_path: Path) -> None:
    database = hub_db(tmp_path / "state")
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    made = [
        backup(database, tmp_path / "b", keep=3, now=start + dt.timedelta(days=d)) for d in range(5)
    ]
    assert backups(tmp_path / "b") == made[-3:]


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no hub database"):
        backup(tmp_path / "missing.db", tmp_path / "b", keep=1)
    with pytest.raises(BackupError, match="keep must be at least 1, got 0"):
        backup(hub_db(tmp_path / "s"), tmp_path / "b", keep=0)
