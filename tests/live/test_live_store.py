"""``hub.store.live.record_event`` on a real SQLite file: every event once, in one transaction,
with its timeline row; a second delivery changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from contracts import signaling as sig
from contracts.cases import Category
from hub.store.live import record_event
from hub.store.migrations import migrations
from runtime.sqlite import open_database

T0 = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
COMMON = {"case_no": "510104021-01-261121-0007", "node": "box-1", "township": "510104021"}


def events() -> list[sig.LiveEvent]:
    at = [T0 + dt.timedelta(seconds=s) for s in (0, 30, 30, 150, 90)]
    return [
        sig.Requested(at=at[0], request_id="r-1", category=Category.CLAIM, **COMMON),
        sig.Accepted(at=at[1], request_id="r-1", official="zhang", waited_s=30.0, **COMMON),
        sig.Started(at=at[2], request_id="r-1", session_id="s-1", official="zhang", **COMMON),
        sig.MonitorView(
            at=at[4],
            session_id="s-1",
            monitor="li",
            monitor_jur="5101",
            from_at=at[2] + dt.timedelta(seconds=10),
            duration_s=50.0,
            **COMMON,
        ),
        sig.Ended(
            at=at[3],
            session_id="s-1",
            official="zhang",
            reason="completed",
            by="zhang",
            started_at=at[2],
            duration_s=120.0,
            **COMMON,
        ),
    ]


def test_each_event_is_recorded_once_with_its_rows(tmp_path: Path) -> None:
    db = open_database(tmp_path / "hub.db", migrations)
    assert [record_event(db, e) for e in events()] == [True] * 5
    assert [record_event(db, e) for e in events()] == [False] * 5  # delivered again

    timeline = db.execute("SELECT kind, actor, detail FROM case_timeline ORDER BY id").fetchall()
    assert [(k, a) for k, a, _ in timeline] == [
        ("live.requested", "box-1"),
        ("live.accepted", "zhang"),
        ("live.started", "zhang"),
        ("live.ended", "zhang"),
    ]
    assert json.loads(timeline[3][2])["duration_s"] == 120.0
    assert json.loads(timeline[1][2])["waited_s"] == 30.0
    [session] = db.query("SELECT * FROM live_sessions")
    assert session["requested_at"] == "2026-11-21T09:00:00.000+00:00"
    assert session["accepted_at"] == session["started_at"] == "2026-11-21T09:00:30.000+00:00"
    assert (session["ended_at"], session["duration_s"], session["end_reason"]) == (
        "2026-11-21T09:02:30.000+00:00", 120.0, "completed"
    )  # fmt: skip
    [view] = db.query("SELECT * FROM live_views")
    assert (view["monitor"], view["from_at"], view["to_at"]) == (
        "li", "2026-11-21T09:00:40.000+00:00", "2026-11-21T09:01:30.000+00:00"
    )  # fmt: skip
    [audit] = db.query("SELECT * FROM audit")
    assert (audit["actor"], audit["action"], audit["target"]) == ("li", "live.monitor_view", "s-1")
    assert json.loads(audit["detail"])["duration_s"] == 50.0
    db.close()


def test_an_end_without_a_start_still_makes_the_session_row(tmp_path: Path) -> None:
    db = open_database(tmp_path / "hub.db", migrations)
    assert record_event(db, events()[4])
    [session] = db.query("SELECT started_at, ended_at, requested_at FROM live_sessions")
    assert session == {
        "started_at": "2026-11-21T09:00:30.000+00:00",
        "ended_at": "2026-11-21T09:02:30.000+00:00",
        "requested_at": None,
    }
    db.close()
