"""Session events reach the hub; a monitor watches unseen; refusals across counties; notes.

Real signaling and hub processes (relay and agent), real aiortc peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from contracts import signaling as sig
from contracts.cases import Category
from tests.support.live import OTHER_COUNTY, LiveStack, case_no
from tests.support.livepeer import LivePeer
from tests.support.procs import wait_until


async def call(stack: LiveStack, node: str, number: str) -> tuple[LivePeer, LivePeer, str]:
    """A box and ``zhang`` in a session, each publishing and receiving the other's video."""
    box = LivePeer(stack.signaling_url, stack.box_token(node), node, shade=60)
    official = LivePeer(stack.signaling_url, stack.user_token("zhang"), "zhang", shade=140)
    await box.connect()
    await official.connect()
    request_id = await box.request_reception(number, "夜间施工噪音", Category.CLAIM)
    started = await official.accept(request_id)
    await box.started()
    session = started.session_id
    await asyncio.gather(box.publish(session), official.publish(session))
    await asyncio.gather(official.subscribe(session), box.subscribe(session))
    await asyncio.gather(
        official.wait_frames(session, node, 10), box.wait_frames(session, "zhang", 10)
    )
    return box, official, session


def timeline(stack: LiveStack, number: str) -> list[dict[str, Any]]:
    status, body = stack.api("zhang", f"/api/v1/cases/{number}")
    assert status == 200, body
    return [{**t, "detail": json.loads(t["detail"] or "null")} for t in body["timeline"]]


async def test_a_monitor_joins_mid_call_unseen_and_the_view_is_audited(stack: LiveStack) -> None:
    number = stack.register_case(case_no(serial=101))
    box, official, session = await call(stack, "box-m", number)
    monitor = LivePeer(stack.signaling_url, stack.user_token("li_monitor"), "li_monitor")
    try:
        await monitor.connect()
        live = await monitor.wait_frame(sig.Live, lambda f: bool(f.sessions))
        assert [s.session_id for s in live.sessions] == [session]
        await box.sync()
        await official.sync()
        box_subs, official_subs = set(box.subscriptions), set(official.subscriptions)

        await monitor.watch(session)
        watched = await monitor.subscribe(session, source="box-m")
        answered = time.monotonic()
        await asyncio.wait_for(watched.first_frame.wait(), 10)
        first_after = watched.arrivals[0] - answered
        assert first_after < 1.0, f"first decodable frame {first_after:.2f} s after the answer"
        await monitor.wait_frames(session, "box-m", 15)
        # the participants were told nothing and got nothing new
        assert await box.sync() == []
        assert await official.sync() == []
        assert (set(box.subscriptions), set(official.subscriptions)) == (box_subs, official_subs)

        await monitor.leave(session)
        await monitor.wait_frame(sig.SessionEnded, lambda e: e.reason == "stopped_watching")
        await official.end(session)
        await box.wait_frame(sig.SessionEnded)
    finally:
        await asyncio.gather(box.close(), official.close(), monitor.close())

    def view_recorded() -> dict[str, Any] | None:
        status, body = stack.api("city_monitor", f"/api/v1/live/sessions/{session}")
        assert status == 200, body
        return body if body["ended_at"] and body["views"] else None

    record = wait_until("the session and its view at the hub", view_recorded, 20)
    [view] = record["views"]
    assert (view["monitor"], view["monitor_jur"]) == ("li_monitor", "510104")
    assert view["from_at"] < view["to_at"]
    assert view["duration_s"] > 0
    assert (record["case_no"], record["node"], record["official"]) == (number, "box-m", "zhang")
    assert (record["end_reason"], record["ended_by"]) == ("completed", "zhang")
    assert record["requested_at"] <= record["accepted_at"] <= record["started_at"]

    status, seen_by_official = stack.api("zhang", f"/api/v1/live/sessions/{session}")
    assert status == 200
    assert "views" not in seen_by_official  # silent monitoring stays silent
    audit = stack.hub.query(
        "SELECT actor, target, detail FROM audit WHERE action = 'live.monitor_view'"
    )
    mine = [(a, json.loads(d)) for a, t, d in audit if t == session]
    assert [a for a, _ in mine] == ["li_monitor"]
    assert mine[0][1]["from"] == view["from_at"]
    assert mine[0][1]["to"] == view["to_at"]


async def test_session_events_enter_the_case_timeline_with_the_duration(
    stack: LiveStack,
) -> None:
    number = stack.register_case(case_no(serial=102))
    box, official, session = await call(stack, "box-t", number)
    try:
        await asyncio.sleep(1.0)
        ended = await box.end(session, "completed")
    finally:
        await asyncio.gather(box.close(), official.close())
    assert ended.duration_s >= 1.0

    def live_rows() -> list[dict[str, Any]] | None:
        rows = [t for t in timeline(stack, number) if t["kind"].startswith("live.")]
        return rows if len(rows) == 4 else None

    rows = wait_until("four live.* rows on the case timeline", live_rows, 20)
    kinds = [r["kind"] for r in rows]
    assert kinds == ["live.requested", "live.accepted", "live.started", "live.ended"]
    requested, accepted, started, end = rows
    assert requested["actor"] == "box-t"
    assert (accepted["actor"], accepted["detail"]["official"]) == ("zhang", "zhang")
    assert accepted["detail"]["waited_s"] >= 0
    assert started["detail"]["session_id"] == session
    assert (end["actor"], end["detail"]["by"], end["detail"]["reason"]) == (
        "box-t", "box-t", "completed"
    )  # fmt: skip
    assert abs(end["detail"]["duration_s"] - ended.duration_s) < 0.1

    status, body = stack.api("zhang", f"/api/v1/live/sessions?case_no={number}")
    assert status == 200, body
    [listed] = body["sessions"]
    assert (listed["session_id"], listed["live"]) == (session, False)
    assert abs(listed["duration_s"] - ended.duration_s) < 0.01
    status, body = stack.api("zhang", f"/api/v1/live/sessions?case_no={number}&live=1")
    assert body["sessions"] == []
    status, body = stack.api("wang", f"/api/v1/live/sessions?case_no={number}")
    assert (status, body["sessions"]) == (200, [])  # another county's official sees none
    status, body = stack.api("wang", f"/api/v1/live/sessions/{session}")
    assert status == 403


async def test_another_countys_tokens_are_refused_with_the_reason(stack: LiveStack) -> None:
    number = case_no(serial=103)
    box = LivePeer(stack.signaling_url, stack.box_token("box-x"), "box-x")
    stranger = LivePeer(stack.signaling_url, stack.user_token("wang"), "wang")
    outsider = LivePeer(stack.signaling_url, stack.user_token("qy_monitor"), "qy_monitor")
    official = LivePeer(stack.signaling_url, stack.user_token("zhang"), "zhang")
    try:
        for peer in (box, stranger, outsider, official):
            await peer.connect()
        assert stranger.welcome is not None and stranger.welcome.you.jur == OTHER_COUNTY
        request_id = await box.request_reception(number)
        await stranger.send(sig.Accept(request_id=request_id))
        refused = await stranger.wait_frame(sig.Error)
        assert refused.code == "out_of_jurisdiction"
        assert "510104021 is outside jurisdiction 510105" in refused.message
        assert all(not q.entries for q in stranger.frames_of(sig.Queue))  # never saw it

        started = await official.accept(request_id)
        await outsider.send(sig.Watch(session_id=started.session_id))
        refused = await outsider.wait_frame(sig.Error)
        assert refused.code == "out_of_jurisdiction"
        assert f"outside jurisdiction {OTHER_COUNTY}" in refused.message
        # a box token cannot ask for another township's case
        await box.send(sig.End(session_id=started.session_id))
        await box.wait_frame(sig.SessionEnded)
        await box.send(
            sig.RequestReception(
                case_no=case_no("510105001", 1), summary="x", category=Category.CLAIM
            )
        )
        refused = await box.wait_frame(sig.Error)
        assert refused.code == "out_of_jurisdiction"
    finally:
        await asyncio.gather(*(p.close() for p in (box, stranger, outsider, official)))


async def test_notes_are_saved_to_the_case_and_refused_outside_jurisdiction(
    stack: LiveStack,
) -> None:
    number = stack.register_case(case_no(serial=104))
    path = f"/api/v1/cases/{number}/notes"
    status, note = stack.api("zhang", path, {"text": "  当事人要求书面答复  "})
    assert status == 201, note
    assert (note["kind"], note["actor"], note["detail"]) == (
        "note", "zhang", {"text": "当事人要求书面答复"}
    )  # fmt: skip
    notes = [t for t in timeline(stack, number) if t["kind"] == "note"]
    assert [(n["actor"], n["detail"]["text"]) for n in notes] == [("zhang", "当事人要求书面答复")]

    status, body = stack.api("wang", path, {"text": "越权"})
    assert status == 403, body
    assert "outside your jurisdiction" in body["error"]
    denied = stack.hub.query(
        "SELECT actor FROM audit WHERE action = 'case.denied' AND target = ?", number
    )
    assert ("wang",) in denied
    for text, says in (("", "needs text"), ("长" * 2001, "at most 2000")):
        status, body = stack.api("zhang", path, {"text": text})
        assert (status, says in body["error"]) == (422, True), body
    status, body = stack.api("zhang", f"/api/v1/cases/{case_no(serial=999)}/notes", {"text": "x"})
    assert status == 404
    assert len([t for t in timeline(stack, number) if t["kind"] == "note"]) == 1
