"""Session events reach the hub exactly once across crashes: the hub killed with events on
its socket, signaling killed after the hub stored an event it could not acknowledge.

Real signaling and hub processes (``LiveStack``), frozen with SIGSTOP and killed with SIGKILL
at chosen points; every check reads what a user would see: the case timeline, the audit log,
and signaling's own outbox file."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from contracts import signaling as sig
from tests.support.live import LiveStack, case_no
from tests.support.livepeer import LivePeer
from tests.support.procs import wait_until

LIVE_KINDS = ["live.requested", "live.accepted", "live.started", "live.ended"]


def live_rows(stack: LiveStack, number: str) -> list[dict[str, Any]]:
    status, body = stack.api("zhang", f"/api/v1/cases/{number}")
    assert status == 200, body
    return [
        {**t, "detail": json.loads(t["detail"] or "null")}
        for t in body["timeline"]
        if t["kind"].startswith("live.")
    ]


async def wait_for(what: str, probe: Any, within: float = 30.0) -> Any:
    """``wait_until`` off the event loop (the peers' sockets keep answering pings)."""
    return await asyncio.to_thread(wait_until, what, probe, within, 0.1)


async def until_rows(stack: LiveStack, number: str, count: int) -> list[dict[str, Any]]:
    def rows() -> list[dict[str, Any]] | None:
        found = live_rows(stack, number)
        return found if len(found) >= count else None

    return list(await wait_for(f"{count} live.* rows on case {number}", rows))


async def outbox_empty(stack: LiveStack) -> None:
    """Every event signaling stored is acknowledged by the hub (nothing more will come)."""
    await wait_for(
        "signaling's outbox emptied by the hub's acks", lambda: not stack.unacked_events()
    )


async def in_session(stack: LiveStack, node: str, number: str) -> tuple[LivePeer, LivePeer, str]:
    box = LivePeer(stack.signaling_url, stack.box_token(node), node)
    official = LivePeer(stack.signaling_url, stack.user_token("zhang"), "zhang")
    await box.connect()
    await official.connect()
    started = await official.accept(await box.request_reception(number))
    await box.started()
    return box, official, started.session_id


def sent_not_acked(stack: LiveStack, count: int) -> bool:
    """``count`` events are on the relay's socket (none waits to be sent) and unacknowledged."""
    health = stack.signaling_health()
    return bool(health["events_unacked"] == count and health["events_waiting"] == 0)


def assert_once(stack: LiveStack, rows: list[dict[str, Any]], session: str) -> None:
    assert [r["kind"] for r in rows] == LIVE_KINDS, rows
    started = rows[2]
    assert started["detail"]["session_id"] == session
    status, record = stack.api("city_monitor", f"/api/v1/live/sessions/{session}")
    assert status == 200, record
    assert (record["end_reason"], record["ended_by"]) == ("completed", "zhang")


async def test_a_hub_killed_with_events_on_its_socket_records_each_once(
    stack: LiveStack,
) -> None:
    number = stack.register_case(case_no(serial=201))
    box, official, session = await in_session(stack, "box-k", number)
    monitor = LivePeer(stack.signaling_url, stack.user_token("li_monitor"), "li_monitor")
    hub = stack.hub.process
    assert hub is not None
    try:
        await until_rows(stack, number, 3)  # requested, accepted, started: stored and acked
        await outbox_empty(stack)
        await monitor.connect()
        await monitor.watch(session)

        hub.signal(signal.SIGSTOP)  # the agent reads nothing more and acknowledges nothing
        try:
            await monitor.leave(session)  # monitor_view
            await monitor.wait_frame(sig.SessionEnded, lambda e: e.reason == "stopped_watching")
            await official.end(session)  # ended
            await wait_for("two events sent to the frozen hub", lambda: sent_not_acked(stack, 2))
            assert [k for _, k in stack.unacked_events()] == ["monitor_view", "ended"]
        finally:
            hub.kill()  # SIGKILL ends a stopped process too
    finally:
        await asyncio.gather(box.close(), official.close(), monitor.close())
    assert [k for _, k in stack.unacked_events()] == ["monitor_view", "ended"]

    await asyncio.to_thread(stack.restart_hub)
    rows = await until_rows(stack, number, 4)
    await outbox_empty(stack)
    assert_once(stack, live_rows(stack, number), session)
    assert rows[3]["detail"]["by"] == "zhang"
    audit = stack.hub.query(
        "SELECT actor FROM audit WHERE action = 'live.monitor_view' AND target = ?", session
    )
    assert audit == [("li_monitor",)]
    views = stack.hub.query("SELECT monitor FROM live_views WHERE session_id = ?", session)
    assert views == [("li_monitor",)]


async def test_an_event_stored_but_not_acknowledged_is_sent_again_and_recorded_once(
    stack: LiveStack,
) -> None:
    """The hub commits the event, then cannot acknowledge it (signaling was killed): the
    restarted signaling sends it again and the hub's write changes nothing."""
    number = stack.register_case(case_no(serial=202))
    box, official, session = await in_session(stack, "box-s", number)
    hub, signaling = stack.hub.process, stack.signaling
    assert hub is not None and signaling is not None
    try:
        await until_rows(stack, number, 3)
        await outbox_empty(stack)
        hub.signal(signal.SIGSTOP)
        try:
            await official.end(session)
            await wait_for(
                "the ended event sent to the frozen hub", lambda: sent_not_acked(stack, 1)
            )
            signaling.kill()  # the event is in the hub's socket buffer and in the outbox
        finally:
            hub.signal(signal.SIGCONT)
    finally:
        await asyncio.gather(box.close(), official.close())
    await until_rows(stack, number, 4)  # the hub read it from its socket and stored it
    assert [k for _, k in stack.unacked_events()] == ["ended"]  # ...and could not ack it

    await asyncio.to_thread(stack.restart_signaling)
    await outbox_empty(stack)
    assert_once(stack, live_rows(stack, number), session)
    assert stack.hub.process is not None
    resent = [
        line
        for line in stack.hub.process.log().splitlines()
        if "(already recorded)" in line and session in line
    ]
    assert len(resent) == 1, resent  # sent again, written once
