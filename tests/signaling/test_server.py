"""The signaling server over real WebSockets on 127.0.0.1: tokens, bad frames, the waiting
queue, sessions, media routing to the relay, hidden monitors, rejoin, the event sink."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest

from contracts import signaling as sig
from contracts.access import Audience, Role
from contracts.cases import Category
from contracts.signaling import (
    CLOSE_GOING_AWAY,
    CLOSE_INVALID_TOKEN,
    CLOSE_REPLACED,
    CLOSE_SUBJECT_IN_USE,
)
from tests.signaling.conftest import (
    CASE_NO,
    OTHER_COUNTY,
    TOWNSHIP,
    WAIT,
    Client,
    Connect,
    Running,
    client_factory,
    running_server,
)

F = TypeVar("F")
REQUEST = sig.RequestReception(case_no=CASE_NO, summary="小区噪音扰民", category=Category.CLAIM)


async def box_waiting(connect: Connect, node: str = "box-1") -> tuple[Client, sig.Queued]:
    box = await connect(node, Role.BOX, TOWNSHIP)
    await box.send(REQUEST)
    return box, await box.expect(sig.Queued)


async def official(connect: Connect, sub: str, jur: str = "510104") -> Client:
    client = await connect(sub, Role.OFFICIAL, jur)
    await client.expect(sig.Queue)  # the snapshot every official gets on joining
    return client


async def in_session(connect: Connect) -> tuple[Client, Client, sig.SessionStarted]:
    """A box and an official in a session (the official accepted)."""
    box, queued = await box_waiting(connect)
    off = await connect("zhang", Role.OFFICIAL, "510104")
    await off.until(sig.Queue, lambda q: len(q.entries) == 1)
    await off.send(sig.Accept(request_id=queued.request_id))
    started = await box.expect(sig.SessionStarted)
    await off.until(sig.SessionStarted)
    assert await off.expect(sig.Queue) == sig.Queue(entries=[])  # taken: gone from the queue
    return box, off, started


async def relay_expect(relay: Client, kind: type[F]) -> F:
    """The relay's next frame other than an ``event``, which must be a ``kind``."""
    frame = await relay.next()
    while isinstance(frame, sig.EventFrame):
        frame = await relay.next()
    assert isinstance(frame, kind), f"expected {kind.__name__}, got {frame!r}"
    return frame


async def sync(client: Client) -> sig.Error:
    """A round trip that proves every frame queued for ``client`` before it has arrived: the
    server handles frames in order, so anything else meant for it would come first."""
    await client.send({"type": "no_such_frame"})
    error = await client.expect(sig.Error)
    assert error.code == "unknown_type"
    return error


# -- tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["query", "hello"])
async def test_a_valid_token_is_welcomed_either_way(connect: Connect, via: str) -> None:
    client = await connect(
        "zhang", Role.OFFICIAL, "510104", via_hello=via == "hello", welcome=False
    )
    welcome = await client.expect(sig.Welcome)
    assert welcome.you == sig.Identity(sub="zhang", role=Role.OFFICIAL, jur="510104")
    assert welcome.resumed is False
    assert await client.expect(sig.Queue) == sig.Queue(entries=[])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda r: r.token(
                "zhang",
                Role.OFFICIAL,
                "510104",
                now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
                ttl=dt.timedelta(minutes=5),
            ),
            "token has expired",
        ),
        (
            lambda r: r.token("zhang", Role.OFFICIAL, "510104", audience=Audience.API),
            "token is not valid for audience 'signaling'",
        ),
        (lambda r: "not-a-jwt", "token rejected"),
    ],
    ids=["expired", "other-audience", "garbage"],
)
@pytest.mark.parametrize("via", ["query", "hello"])
async def test_bad_tokens_are_refused_with_the_reason(
    running: Running,
    http: aiohttp.ClientSession,
    make: Callable[[Running], str],
    reason: str,
    via: str,
) -> None:
    token = make(running)
    if via == "query":
        client = Client(await http.ws_connect(f"{running.url}?token={token}"))
    else:
        client = Client(await http.ws_connect(running.url))
        await client.send(sig.Hello(token=token))
    error = await client.expect(sig.Error)
    assert error.code == "invalid_token"
    assert reason in error.message
    code, message = await client.closed()
    assert code == CLOSE_INVALID_TOKEN
    assert reason in message


async def test_frames_before_hello_get_errors_and_hello_still_works(
    running: Running, http: aiohttp.ClientSession
) -> None:
    client = Client(await http.ws_connect(running.url))
    await client.send("{oops")
    assert (await client.expect(sig.Error)).code == "bad_json"
    await client.send(sig.Accept(request_id="r-1"))
    error = await client.expect(sig.Error)
    assert (error.code, error.frame_type) == ("hello_first", "accept")
    await client.send(sig.Hello(token=running.token("zhang", Role.OFFICIAL, "510104")))
    assert (await client.expect(sig.Welcome)).you.sub == "zhang"


async def test_a_silent_socket_is_closed_after_the_hello_timeout(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path, hello_timeout=0.2) as r:
        client = Client(await http.ws_connect(r.url))
        assert (await client.expect(sig.Error)).code == "hello_timeout"
        assert (await client.closed())[0] == 4408


# -- bad frames ---------------------------------------------------------------------------


async def test_malformed_frames_get_errors_and_the_socket_keeps_working(connect: Connect) -> None:
    box = await connect("box-1", Role.BOX, TOWNSHIP)
    cases = [
        ("{not json", "bad_json", None, "not valid JSON"),
        ('{"type": "teleport"}', "unknown_type", "teleport", "unknown frame type 'teleport'"),
        ('{"type": "request_reception", "case_no": "' + CASE_NO + '"}', "invalid_field",
         "request_reception", "summary: missing field"),
        (json.dumps({"type": "request_reception", "case_no": CASE_NO, "category": "claim",
                     "summary": "x" * (70 * 1024)}), "too_large", None, "exceeds 65536 bytes"),
        ('{"type": "queue", "entries": []}', "not_allowed", "queue", "sent by the server only"),
    ]  # fmt: skip
    for text, code, frame_type, says in cases:
        await box.send(text)
        error = await box.expect(sig.Error)
        assert (error.code, error.frame_type) == (code, frame_type), text[:80]
        assert says in error.message
    await box.send(REQUEST)  # still open, still the same box
    assert (await box.expect(sig.Queued)).position == 1


async def test_a_frame_of_the_wrong_role_is_refused(connect: Connect) -> None:
    box, queued = await box_waiting(connect)
    await box.send(sig.Accept(request_id=queued.request_id))
    error = await box.expect(sig.Error)
    assert (error.code, error.frame_type) == ("forbidden", "accept")
    assert "role 'box' may not send 'accept'" in error.message
    monitor = await connect("li", Role.MONITOR, "5101")
    await monitor.expect(sig.Live)
    await monitor.send(REQUEST)
    assert (await monitor.expect(sig.Error)).code == "forbidden"


async def test_a_box_asks_only_for_its_own_townships_cases(connect: Connect) -> None:
    box = await connect("box-1", Role.BOX, TOWNSHIP)
    await box.send(REQUEST.model_copy(update={"case_no": "510105001-01-261121-0001"}))
    error = await box.expect(sig.Error)
    assert error.code == "out_of_jurisdiction"
    assert "510105001-01-261121-0001" in error.message
    await box.send(REQUEST)
    queued = await box.expect(sig.Queued)
    await box.send(REQUEST)
    error = await box.expect(sig.Error)
    assert error.code == "already_waiting"
    assert queued.request_id in error.message


# -- the waiting queue --------------------------------------------------------------------


async def test_officials_covering_the_township_see_the_request_live_and_one_accepts(
    running: Running, connect: Connect
) -> None:
    zhang = await official(connect, "zhang", "510104")  # the county
    wang = await connect("wang", Role.PETITION_OFFICE, "5101")  # the city covers it too
    assert await wang.expect(sig.Queue) == sig.Queue(entries=[])
    box, queued = await box_waiting(connect)
    assert queued.position == 1
    for client in (zhang, wang):
        (entry,) = (await client.expect(sig.Queue)).entries
        assert entry.request_id == queued.request_id
        assert (entry.node, entry.township, entry.township_name) == (
            "box-1",
            TOWNSHIP,
            "盐市口街道",
        )
        assert (entry.case_no, entry.summary, entry.category) == (CASE_NO, REQUEST.summary, "claim")
        assert (
            dt.timedelta(0)
            <= dt.datetime.now(dt.UTC) - entry.waiting_since
            < dt.timedelta(seconds=WAIT)
        )

    await zhang.send(sig.Accept(request_id=queued.request_id))
    for_box = await box.expect(sig.SessionStarted)
    for_zhang = await zhang.expect(sig.SessionStarted)
    assert for_box.session_id == for_zhang.session_id
    assert (for_box.role, for_zhang.role) == ("box", "official")
    assert {(p.sub, p.part) for p in for_box.peers} == {("box-1", "box"), ("zhang", "official")}
    assert for_box.case_no == CASE_NO
    assert await wang.expect(sig.Queue) == sig.Queue(entries=[])
    assert await zhang.expect(sig.Queue) == sig.Queue(entries=[])

    await wang.send(sig.Accept(request_id=queued.request_id))  # too late
    error = await wang.expect(sig.Error)
    assert error.code == "unknown_request"

    requested, accepted, began = running.events()
    assert isinstance(requested, sig.Requested)
    assert (requested.request_id, requested.case_no, requested.category) == (
        queued.request_id, CASE_NO, Category.CLAIM
    )  # fmt: skip
    assert (requested.node, requested.township) == ("box-1", TOWNSHIP)
    assert isinstance(accepted, sig.Accepted)
    assert (accepted.request_id, accepted.official) == (queued.request_id, "zhang")
    assert accepted.waited_s >= 0
    assert isinstance(began, sig.Started)
    assert (began.session_id, began.official, began.case_no) == (
        for_box.session_id, "zhang", CASE_NO
    )  # fmt: skip


async def test_an_official_of_another_county_never_sees_the_request_nor_takes_it(
    running: Running, connect: Connect
) -> None:
    qy = await official(connect, "qy", OTHER_COUNTY)
    box, queued = await box_waiting(connect)
    await qy.send(sig.Accept(request_id=queued.request_id))
    error = await qy.expect(sig.Error)  # first frame since the empty queue: no update came
    assert error.code == "out_of_jurisdiction"
    assert f"township {TOWNSHIP} is outside jurisdiction {OTHER_COUNTY}" in error.message
    await sync(box)  # and the box is still just waiting
    assert [e.kind for e in running.events()] == ["requested"]


async def test_queue_positions_move_up_and_a_box_can_withdraw(connect: Connect) -> None:
    first, q1 = await box_waiting(connect, "box-1")
    second, q2 = await box_waiting(connect, "box-2")
    assert (q1.position, q2.position) == (1, 2)
    await first.send(sig.Cancel(request_id=q1.request_id))
    moved = await second.expect(sig.Queued)
    assert (moved.request_id, moved.position) == (q2.request_id, 1)
    await first.send(sig.Cancel(request_id=q1.request_id))
    assert (await first.expect(sig.Error)).code == "unknown_request"


# -- media routing ------------------------------------------------------------------------


async def test_offer_answer_and_ice_travel_between_participant_and_relay(
    running: Running, connect: Connect
) -> None:
    box, off, started = await in_session(connect)
    sid = started.session_id
    await box.send(sig.Offer(session_id=sid, direction="publish", sdp="v=0 box-offer"))
    assert (await box.expect(sig.Error)).code == "relay_unavailable"

    relay = await connect(sig.RELAY_SUBJECT, Role.ADMIN, "51")
    known = await relay_expect(relay, sig.SessionStarted)  # the live sessions, on joining
    assert (known.session_id, known.role) == (sid, "relay")

    await box.send(sig.Offer(session_id=sid, direction="publish", sdp="v=0 box-offer"))
    offer = await relay_expect(relay, sig.Offer)
    assert (offer.peer, offer.sdp, offer.direction) == ("box-1", "v=0 box-offer", "publish")
    await relay.send(sig.Answer(session_id=sid, direction="publish", sdp="v=0 ans", peer="box-1"))
    answer = await box.expect(sig.Answer)
    assert (answer.sdp, answer.direction) == ("v=0 ans", "publish")

    candidate = sig.IceCandidate(candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid="0")
    await off.send(sig.Ice(session_id=sid, direction="subscribe", candidate=candidate, peer="x"))
    ice = await relay_expect(relay, sig.Ice)
    assert (ice.peer, ice.candidate) == ("zhang", candidate)  # the server names the sender
    await relay.send(
        sig.Ice(session_id=sid, direction="subscribe", candidate=candidate, peer="zhang")
    )
    assert (await off.expect(sig.Ice)).candidate == candidate
    await sync(box)  # the official's ICE never reached the box

    await relay.send(sig.Answer(session_id=sid, direction="publish", sdp="v=0"))
    assert (await relay_expect(relay, sig.Error)).code == "invalid_field"
    stranger = await official(connect, "stranger", "510104")
    await stranger.send(sig.Offer(session_id=sid, direction="subscribe", sdp="v=0"))
    assert (await stranger.expect(sig.Error)).code == "not_in_session"
    await stranger.send(sig.Offer(session_id="s-none", direction="subscribe", sdp="v=0"))
    assert (await stranger.expect(sig.Error)).code == "unknown_session"


# -- hidden monitors ----------------------------------------------------------------------


async def test_a_monitor_watches_unseen_and_the_view_is_recorded(
    running: Running, connect: Connect
) -> None:
    box, off, started = await in_session(connect)
    sid = started.session_id
    relay = await connect(sig.RELAY_SUBJECT, Role.ADMIN, "51")
    await relay_expect(relay, sig.SessionStarted)
    outsider = await connect("qy-mon", Role.MONITOR, OTHER_COUNTY)
    assert await outsider.expect(sig.Live) == sig.Live(sessions=[])
    await outsider.send(sig.Watch(session_id=sid))
    assert (await outsider.expect(sig.Error)).code == "out_of_jurisdiction"

    monitor = await connect("li", Role.MONITOR, "5101")
    (tile,) = (await monitor.expect(sig.Live)).sessions
    assert (tile.session_id, tile.node, tile.official, tile.case_no) == (
        sid, "box-1", "zhang", CASE_NO
    )  # fmt: skip
    await monitor.send(sig.Watch(session_id=sid))
    watching = await monitor.expect(sig.SessionStarted)
    assert watching.role == "monitor"
    assert {p.sub for p in watching.peers} == {"box-1", "zhang"}  # no monitor among peers
    await monitor.send(sig.Offer(session_id=sid, direction="publish", sdp="v=0"))
    assert (await monitor.expect(sig.Error)).code == "forbidden"
    await monitor.send(sig.Offer(session_id=sid, direction="subscribe", sdp="v=0 watch"))
    offer = await relay_expect(relay, sig.Offer)
    assert (offer.peer, offer.direction) == ("li", "subscribe")
    for participant in (box, off):
        await sync(participant)  # nothing about the monitor reached the participants

    await monitor.send(sig.Leave(session_id=sid))
    assert (await monitor.expect(sig.SessionEnded)).reason == "stopped_watching"
    assert await relay_expect(relay, sig.PeerLeft) == sig.PeerLeft(session_id=sid, peer="li")
    for participant in (box, off):
        await sync(participant)

    views = [e for e in running.events() if isinstance(e, sig.MonitorView)]
    assert len(views) == 1
    view = views[0]
    assert (view.monitor, view.monitor_jur, view.session_id, view.case_no) == (
        "li", "5101", sid, CASE_NO
    )  # fmt: skip
    assert view.from_at <= view.at
    assert view.duration_s >= 0


async def test_a_watching_monitor_is_told_when_the_session_ends(
    running: Running, connect: Connect
) -> None:
    box, off, started = await in_session(connect)
    monitor = await connect("li", Role.MONITOR, "510104")
    await monitor.expect(sig.Live)
    await monitor.send(sig.Watch(session_id=started.session_id))
    await monitor.expect(sig.SessionStarted)
    await off.send(sig.End(session_id=started.session_id, reason="completed"))
    for client in (box, off, monitor):
        ended = await client.until(sig.SessionEnded)
        assert (ended.reason, ended.by) == ("completed", "zhang")
    assert await monitor.expect(sig.Live) == sig.Live(sessions=[])
    events = running.events()
    assert [e.kind for e in events] == [
        "requested", "accepted", "started", "monitor_view", "ended"
    ]  # fmt: skip
    ended_event = events[-1]
    assert isinstance(ended_event, sig.Ended)
    assert (ended_event.session_id, ended_event.reason, ended_event.by) == (
        started.session_id, "completed", "zhang"
    )  # fmt: skip
    assert ended_event.official == "zhang"
    assert ended_event.duration_s >= 0
    assert events[-2].at == ended_event.at  # the view closed with the session


# -- rejoin -------------------------------------------------------------------------------


async def test_a_dropped_participant_rejoins_its_session_within_the_grace(
    running: Running, connect: Connect
) -> None:
    box, off, started = await in_session(connect)
    await box.close()
    rooms = running.server.rooms
    for _ in range(200):
        if rooms.rejoining("box-1"):
            break
        await asyncio.sleep(0.01)
    assert rooms.rejoining("box-1")
    again = await connect("box-1", Role.BOX, TOWNSHIP, welcome=False)
    welcome = await again.expect(sig.Welcome)
    assert (welcome.resumed, welcome.session_id) == (True, started.session_id)
    assert (await again.expect(sig.SessionStarted)).session_id == started.session_id
    await sync(off)  # the official saw no end
    await off.send(sig.End(session_id=started.session_id, reason="completed"))
    assert (await again.expect(sig.SessionEnded)).by == "zhang"


async def test_a_participant_not_returning_ends_the_session_after_the_grace(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path, rejoin_grace=0.3) as r:
        connect = client_factory(r, http)
        box, off, started = await in_session(connect)
        await box.close()
        ended = await off.until(sig.SessionEnded)
        assert (ended.session_id, ended.reason, ended.by) == (started.session_id, "peer_lost", None)
        events = r.events()
        assert [e.kind for e in events] == ["requested", "accepted", "started", "ended"]
        assert isinstance(events[-1], sig.Ended)
        assert events[-1].reason == "peer_lost"
        assert events[-1].duration_s >= 0.3
        back = await connect("box-1", Role.BOX, TOWNSHIP, welcome=False)
        assert (await back.expect(sig.Welcome)).resumed is False


async def test_a_waiting_box_keeps_its_place_across_a_reconnect(
    running: Running, connect: Connect
) -> None:
    box, queued = await box_waiting(connect)
    again = await connect("box-1", Role.BOX, TOWNSHIP, welcome=False)  # the old one is replaced
    assert (await again.expect(sig.Welcome)).resumed is True
    assert await again.expect(sig.Queued) == queued
    assert (await box.expect(sig.Error)).code == "replaced"
    assert (await box.closed())[0] == CLOSE_REPLACED


async def test_a_user_named_like_a_box_cannot_take_over_its_session(
    running: Running, connect: Connect
) -> None:
    box, off, started = await in_session(connect)
    impostor = await connect("box-1", Role.OFFICIAL, "510104", welcome=False)
    error = await impostor.expect(sig.Error)
    assert error.code == "subject_in_use"
    assert "in use with role 'box'" in error.message
    assert (await impostor.closed())[0] == CLOSE_SUBJECT_IN_USE
    await box.send(sig.End(session_id=started.session_id, reason="completed"))
    assert (await off.expect(sig.SessionEnded)).by == "box-1"  # the real box still holds it


async def test_shutdown_ends_sessions_and_closes_every_socket(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path) as r:
        connect = client_factory(r, http)
        box, off, _ = await in_session(connect)
        waiting, _ = await box_waiting(connect, "box-2")
    for client in (box, off):
        assert (await client.until(sig.SessionEnded)).reason == "shutdown"
        assert (await client.closed())[0] == CLOSE_GOING_AWAY
    assert (await waiting.closed())[0] == CLOSE_GOING_AWAY
    kinds = [e.kind for e in r.events()]
    assert kinds[-2:] == ["ended", "cancelled"]


# -- session events to the relay (the hub) ---------------------------------------------------


async def test_events_wait_for_the_relay_and_then_arrive_in_order(
    running: Running, connect: Connect
) -> None:
    _box, off, started = await in_session(connect)  # requested, accepted, started: no relay yet
    assert running.server.rooms.stats()["events_waiting"] == 3
    relay = await connect(sig.RELAY_SUBJECT, Role.ADMIN, "51")
    kinds = [(await relay.expect(sig.EventFrame)).event.kind for _ in range(3)]
    assert kinds == ["requested", "accepted", "started"]
    assert (await relay.expect(sig.SessionStarted)).session_id == started.session_id

    await off.send(sig.End(session_id=started.session_id, reason="completed"))
    assert (await relay.expect(sig.SessionEnded)).reason == "completed"
    ended = (await relay.expect(sig.EventFrame)).event  # live: sent at once
    assert isinstance(ended, sig.Ended)
    assert (ended.session_id, ended.by, ended.official) == (started.session_id, "zhang", "zhang")
    assert running.server.rooms.stats()["events_waiting"] == 0


async def test_without_a_relay_every_event_is_kept_and_the_backlog_logged(
    tmp_path: Path, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(tmp_path, event_buffer=10) as r:
        connect = client_factory(r, http)
        box = await connect("box-1", Role.BOX, TOWNSHIP)
        for _ in range(6):  # requested + cancelled each time: 12 events, warned at 10
            await box.send(REQUEST)
            queued = await box.expect(sig.Queued)
            await box.send(sig.Cancel(request_id=queued.request_id))
        await sync(box)
        stats = r.server.rooms.stats()
        assert (stats["events_waiting"], stats["events_dropped"]) == (12, 0)
        assert "10 session events not acknowledged by the hub" in caplog.text
        relay = await connect(sig.RELAY_SUBJECT, Role.ADMIN, "51")
        first = await relay.expect(sig.EventFrame)
        assert (first.seq, first.event.kind) == (1, "requested")  # the very first is kept
        seqs = [first.seq] + [(await relay.expect(sig.EventFrame)).seq for _ in range(11)]
        assert seqs == list(range(1, 13))
