"""Session events reach the relay exactly as stored: the signaling server's durable outbox
(``signaling.outbox.EventOutbox``), ``event {seq}`` and the relay's cumulative ``event_ack``.

Real servers on 127.0.0.1 (in process, and one ``xfv signaling run`` process killed with
SIGKILL), real WebSocket clients, the outbox in a real SQLite file under ``tmp_path``."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from contracts import signaling as sig
from contracts.access import Audience, Role, mint_token
from contracts.cases import Category
from hub.media.agent import RelayAgent
from hub.media.relay import Relay
from signaling.outbox import EventOutbox
from signaling.sink import RelayFeed
from tests.signaling.conftest import (
    CASE_NO,
    TOWNSHIP,
    Client,
    Connect,
    client_factory,
    running_server,
)
from tests.support.broker import free_port
from tests.support.procs import XfvProcess, http_json, wait_until, write_toml

REQUEST = sig.RequestReception(case_no=CASE_NO, summary="小区噪音扰民", category=Category.CLAIM)
KEY = "cd" * 32


def outbox_rows(path: Path) -> list[tuple[int, str]]:
    """(seq, kind) of every event in the outbox file, read beside the server."""
    with sqlite3.connect(path) as db:
        return [(int(n), str(k)) for n, k in db.execute("SELECT seq, kind FROM events")]


async def relay_of(connect: Connect) -> Client:
    return await connect(sig.RELAY_SUBJECT, Role.ADMIN, "51")


async def until_quiet(client: Client) -> list[sig.Frame]:
    """Every frame that reaches ``client`` before the answer to a round trip: the server
    handles a socket's frames in order, so anything queued for it before comes first."""
    await client.send({"type": "xfv_sync"})
    frames: list[sig.Frame] = []
    while True:
        frame = await client.next()
        if isinstance(frame, sig.Error) and frame.frame_type == "xfv_sync":
            return frames
        frames.append(frame)


def events_of(frames: list[sig.Frame]) -> list[tuple[int, str]]:
    return [(f.seq, f.event.kind) for f in frames if isinstance(f, sig.EventFrame)]


async def box_requests(connect: Connect, relay: Client) -> tuple[Client, sig.Queued]:
    """box-1 asks for an official; ``relay`` receives the one ``requested`` event, seq 1 (not
    acknowledged)."""
    box = await connect("box-1", Role.BOX, TOWNSHIP)
    await box.send(REQUEST)
    queued = await box.expect(sig.Queued)
    assert events_of(await until_quiet(relay)) == [(1, "requested")]
    return box, queued


async def a_whole_session(connect: Connect, node: str = "box-1") -> None:
    """requested, accepted, started and ended: four events."""
    box = await connect(node, Role.BOX, TOWNSHIP)
    await box.send(REQUEST)
    queued = await box.expect(sig.Queued)
    official = await connect("zhang", Role.OFFICIAL, "510104")
    await official.until(sig.Queue, lambda q: len(q.entries) == 1)
    await official.send(sig.Accept(request_id=queued.request_id))
    started = await box.expect(sig.SessionStarted)
    await official.send(sig.End(session_id=started.session_id, reason="completed"))
    await box.until(sig.SessionEnded)
    await box.close()
    await official.close()


async def test_events_without_a_relay_survive_a_restart_and_arrive_in_order(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    events_db = tmp_path / "signaling" / "events.db"
    async with running_server(tmp_path, events_db=events_db) as first:
        await a_whole_session(client_factory(first, http))
        assert [e.kind for e in first.events()] == ["requested", "accepted", "started", "ended"]
        assert first.server.rooms.stats()["events_unacked"] == 4
    # the server is gone; what it could not deliver is on disk
    assert outbox_rows(events_db) == [(1, "requested"), (2, "accepted"), (3, "started"),
                                      (4, "ended")]  # fmt: skip

    async with running_server(tmp_path, events_db=events_db) as second:
        assert second.server.rooms.stats()["events_waiting"] == 4
        relay = await relay_of(client_factory(second, http))
        frames = await until_quiet(relay)
        assert events_of(frames) == [(1, "requested"), (2, "accepted"), (3, "started"),
                                     (4, "ended")]  # fmt: skip
        [ended] = [f.event for f in frames if isinstance(f, sig.EventFrame) and f.seq == 4]
        assert isinstance(ended, sig.Ended)
        assert (ended.case_no, ended.by, ended.reason) == (CASE_NO, "zhang", "completed")
        assert second.server.rooms.stats()["events_unacked"] == 4  # sent is not acknowledged

        await relay.send(sig.EventAck(seq=4))  # cumulative: all four
        assert await until_quiet(relay) == []
        stats = second.server.rooms.stats()
        assert (stats["events_unacked"], stats["events_waiting"]) == (0, 0)
        assert outbox_rows(events_db) == []
        # numbers are never reused: the next event continues after the acknowledged ones
        await a_whole_session(client_factory(second, http), "box-2")
        assert [s for s, _ in events_of(await until_quiet(relay))] == [5, 6, 7, 8]


async def test_an_unacked_event_is_sent_again_after_the_relay_drops_and_acked_ones_are_not(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    events_db = tmp_path / "events.db"
    async with running_server(tmp_path, events_db=events_db, rejoin_grace=3.0) as r:
        connect = client_factory(r, http)
        relay = await relay_of(connect)
        box, queued = await box_requests(connect, relay)
        await relay.send(sig.EventAck(seq=1))

        official = await connect("zhang", Role.OFFICIAL, "510104")
        await official.until(sig.Queue, lambda q: len(q.entries) == 1)
        await official.send(sig.Accept(request_id=queued.request_id))
        started = await box.expect(sig.SessionStarted)
        assert events_of(await until_quiet(relay)) == [(2, "accepted"), (3, "started")]
        await relay.close()  # received, never acknowledged: the hub may not have stored them
        await official.send(sig.End(session_id=started.session_id, reason="completed"))
        await box.until(sig.SessionEnded)
        assert outbox_rows(events_db) == [(2, "accepted"), (3, "started"), (4, "ended")]

        again = await relay_of(connect)
        assert events_of(await until_quiet(again)) == [(2, "accepted"), (3, "started"),
                                                       (4, "ended")]  # fmt: skip
        await again.send(sig.EventAck(seq=3))  # part of them
        assert await until_quiet(again) == []
        assert outbox_rows(events_db) == [(4, "ended")]
        await again.close()

        third = await relay_of(connect)
        assert events_of(await until_quiet(third)) == [(4, "ended")]
        await third.send(sig.EventAck(seq=4))
        await until_quiet(third)
        await third.close()
        fourth = await relay_of(connect)
        assert events_of(await until_quiet(fourth)) == []
        assert r.server.rooms.stats()["events_unacked"] == 0


async def test_a_bad_event_ack_gets_an_error_frame_and_the_relay_stays(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path, events_db=tmp_path / "events.db") as r:
        connect = client_factory(r, http)
        relay = await relay_of(connect)
        box, _ = await box_requests(connect, relay)
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"type": "event_ack"}, "invalid_field", "seq: missing field"),
            ({"type": "event_ack", "seq": "1"}, "invalid_field", "seq: Input should be a valid"),
            ({"type": "event_ack", "seq": 0}, "invalid_field", "greater than or equal to 1"),
            ({"type": "event_ack", "seq": 1, "all": True}, "invalid_field", "all: unknown field"),
            ({"type": "event_ack", "seq": 2}, "invalid_ack", "event_ack seq 2 is beyond the "
             "newest event sent on this connection (1)"),
        ]  # fmt: skip
        for frame, code, says in cases:
            await relay.send(frame)
            error = await relay.expect(sig.Error)
            assert (error.code, error.frame_type) == (code, "event_ack"), frame
            assert says in error.message
        assert r.server.rooms.stats()["events_unacked"] == 1  # nothing was acknowledged

        await box.send(sig.EventAck(seq=1))  # only the relay acknowledges
        error = await box.expect(sig.Error)
        assert (error.code, error.frame_type) == ("forbidden", "event_ack")
        assert r.server.rooms.stats()["events_unacked"] == 1

        await relay.send(sig.EventAck(seq=1))  # the socket still works
        assert await until_quiet(relay) == []
        assert r.server.rooms.stats()["events_unacked"] == 0
        await relay.send(sig.EventAck(seq=1))  # an ack repeated changes nothing
        assert await until_quiet(relay) == []


async def test_at_most_a_window_of_events_is_unacknowledged_on_the_wire(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    pairs = sig.EVENT_WINDOW // 2 + 6  # requested + cancelled: 12 events beyond the window
    async with running_server(tmp_path, events_db=tmp_path / "events.db") as r:
        connect = client_factory(r, http)
        box = await connect("box-1", Role.BOX, TOWNSHIP)
        for _ in range(pairs):
            await box.send(REQUEST)
            queued = await box.expect(sig.Queued)
            await box.send(sig.Cancel(request_id=queued.request_id))
        await until_quiet(box)
        total = 2 * pairs
        assert r.server.rooms.stats()["events_waiting"] == total

        relay = await relay_of(connect)
        sent = events_of(await until_quiet(relay))
        assert [s for s, _ in sent] == list(range(1, sig.EVENT_WINDOW + 1))
        assert r.server.rooms.stats()["events_waiting"] == total - sig.EVENT_WINDOW
        await relay.send(sig.EventAck(seq=10))
        more = events_of(await until_quiet(relay))
        assert [s for s, _ in more] == list(range(sig.EVENT_WINDOW + 1, sig.EVENT_WINDOW + 11))
        await relay.send(sig.EventAck(seq=sig.EVENT_WINDOW + 10))
        rest = events_of(await until_quiet(relay))
        assert [s for s, _ in rest] == list(range(sig.EVENT_WINDOW + 11, total + 1))
        assert [k for _, k in sent[:2]] == ["requested", "cancelled"]


def test_a_backlog_is_kept_whole_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing is dropped for want of a relay: beyond ``warn_backlog`` a warning, again at
    every doubling, and the file has every event."""
    feed = RelayFeed(EventOutbox(tmp_path / "events.db"), warn_backlog=10)
    try:
        for i in range(45):
            feed.emit(_requested(i))
        assert (feed.unacked, feed.waiting, feed.dropped) == (45, 45, 0)
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert [w.split(" ", 1)[0] for w in warnings] == ["10", "20", "40"]
        assert "not acknowledged by the hub" in warnings[0]
        assert "relay not connected" in warnings[0]
    finally:
        feed.close()
    assert [s for s, _ in outbox_rows(tmp_path / "events.db")] == list(range(1, 46))


def test_an_emit_costs_well_under_a_millisecond(tmp_path: Path) -> None:
    """The outbox write runs on the event loop, synchronously: measure it (WAL,
    ``synchronous=NORMAL``: 0.04 ms median here, serialising the event included)."""
    feed = RelayFeed(EventOutbox(tmp_path / "events.db"))
    try:
        for i in range(20):  # warm up: the file and its WAL exist
            feed.emit(_requested(i))
        costs = []
        for i in range(300):
            event = _requested(i)
            t = time.perf_counter()
            feed.emit(event)
            costs.append(time.perf_counter() - t)
    finally:
        feed.close()
    median = statistics.median(costs)
    print(f"emit: median {median * 1e3:.3f} ms, p90 {sorted(costs)[270] * 1e3:.3f} ms")
    assert median < 0.001, f"an emit took {median * 1e3:.2f} ms (median)"


def _requested(i: int) -> sig.Requested:
    return sig.Requested(
        at=dt.datetime.now(dt.UTC),
        case_no=CASE_NO,
        node="box-1",
        township=TOWNSHIP,
        request_id=f"r-{i}",
        category=Category.CLAIM,
    )


async def test_a_killed_signaling_process_sends_what_it_had_not_got_acknowledged(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    key_file = tmp_path / "hub.key"
    key_file.write_text(KEY + "\n")
    port = free_port()
    events_db = tmp_path / "state" / "events.db"
    config = write_toml(
        tmp_path / "signaling.toml",
        {
            "log_level": "DEBUG",
            "token_secret_file": key_file,
            "events_db": events_db,
            "http": {"host": "127.0.0.1", "port": port},
        },
    )
    url = f"ws://127.0.0.1:{port}/ws"

    async def connect(sub: str, role: Role, jur: str) -> Client:
        token = mint_token(
            KEY.encode(),
            sub=sub,
            role=role,
            jurisdiction=jur,
            audience=Audience.SIGNALING,
            ttl=dt.timedelta(minutes=5),
        )
        client = Client(await http.ws_connect(f"{url}?token={token}"))
        assert (await client.expect(sig.Welcome)).you.sub == sub
        return client

    proc = XfvProcess(["signaling", "run", "--config", str(config)], tmp_path / "signaling.log")

    def up() -> bool:
        assert proc.running, proc.log()[-3000:]
        return http_json(f"http://127.0.0.1:{port}/health")[0] == 200

    try:
        proc.start()
        await asyncio.to_thread(wait_until, "signaling health", up, 60)
        relay = await relay_of(connect)
        box, queued = await box_requests(connect, relay)
        await relay.send(sig.EventAck(seq=1))
        await until_quiet(relay)
        await relay.close()
        official = await connect("zhang", Role.OFFICIAL, "510104")
        await official.until(sig.Queue, lambda q: len(q.entries) == 1)
        await official.send(sig.Accept(request_id=queued.request_id))
        await box.expect(sig.SessionStarted)

        proc.kill()  # SIGKILL: no shutdown, no goodbye
        assert outbox_rows(events_db) == [(2, "accepted"), (3, "started")]
        proc.start()
        await asyncio.to_thread(wait_until, "signaling health again", up, 60)
        relay = await relay_of(connect)
        frames = await until_quiet(relay)
        assert events_of(frames) == [(2, "accepted"), (3, "started")]
        started = [f.event for f in frames if isinstance(f, sig.EventFrame)][1]
        assert isinstance(started, sig.Started)
        assert (started.request_id, started.official) == (queued.request_id, "zhang")
        await relay.send(sig.EventAck(seq=3))
        await until_quiet(relay)
        status, health = http_json(f"http://127.0.0.1:{port}/health")
        assert (status, health["events_unacked"], health["relay"]) == (200, 0, 1)
    finally:
        proc.stop()
    assert outbox_rows(events_db) == []


async def test_the_agent_acknowledges_an_event_only_once_the_hub_recorded_it(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The hub's write of ``accepted`` fails twice: it stays in the outbox (with ``started``
    behind it) until the third try commits, then everything is acknowledged, in order."""
    events_db = tmp_path / "events.db"
    recorded: list[str] = []
    outbox_at_failures: list[list[tuple[int, str]]] = []

    async def on_event(event: sig.LiveEvent) -> None:
        if event.kind == "accepted" and len(outbox_at_failures) < 2:
            outbox_at_failures.append(outbox_rows(events_db))
            raise RuntimeError("the hub's database is locked (test)")
        recorded.append(event.kind)

    async with (
        running_server(tmp_path, events_db=events_db) as r,
        Relay() as relay,
        RelayAgent(relay, r.url, r.key, "51", on_event=on_event, reconnect_min=0.1) as agent,
    ):
        await asyncio.wait_for(agent.connected.wait(), 10)
        await a_whole_session(client_factory(r, http))
        for _ in range(200):
            if not outbox_rows(events_db):
                break
            await asyncio.sleep(0.05)
        assert outbox_rows(events_db) == []
        assert recorded == ["requested", "accepted", "started", "ended"]
        assert agent.stats.acked_seq == 4
        for rows in outbox_at_failures:
            assert (2, "accepted") in rows  # not acknowledged while not recorded
