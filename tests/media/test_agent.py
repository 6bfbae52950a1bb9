"""``hub.media.agent.RelayAgent`` in process: a real signaling server and a real relay on
127.0.0.1, aiortc ``LivePeer`` s as participants."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts import signaling as sig
from contracts.access import Role
from hub.media.agent import RelayAgent
from hub.media.relay import Relay
from tests.signaling.conftest import TOWNSHIP, Running, running_server
from tests.support.live import case_no
from tests.support.livepeer import LivePeer


@contextlib.asynccontextmanager
async def agent_for(
    running: Running, relay: Relay, **options: float
) -> AsyncIterator[tuple[RelayAgent, list[sig.LiveEvent]]]:
    seen: list[sig.LiveEvent] = []

    async def on_event(event: sig.LiveEvent) -> None:
        seen.append(event)

    agent = RelayAgent(
        relay, running.url, running.key, "51", on_event=on_event, reconnect_min=0.1, **options
    )
    async with agent:
        await asyncio.wait_for(agent.connected.wait(), 10)
        yield agent, seen


async def in_session(running: Running, node: str) -> tuple[LivePeer, LivePeer, str]:
    box = LivePeer(running.url, running.token(node, Role.BOX, TOWNSHIP), node)
    official = LivePeer(running.url, running.token("zhang", Role.OFFICIAL, "510104"), "zhang")
    await box.connect()
    await official.connect()
    started = await official.accept(await box.request_reception(case_no()))
    await box.started()
    return box, official, started.session_id


async def test_a_subscriber_may_offer_before_the_source_publishes(
    tmp_path: Path, relay: Relay
) -> None:
    async with running_server(tmp_path) as running, agent_for(running, relay) as (agent, seen):
        box, official, session = await in_session(running, "box-1")
        try:
            early = asyncio.create_task(official.subscribe(session))  # the box sends nothing yet
            await asyncio.sleep(0.5)
            assert not early.done()
            await box.publish(session)
            sub = await asyncio.wait_for(early, 20)
            assert sub.source == "box-1"
            await official.wait_frames(session, "box-1", 5)

            await official.end(session)
            await box.wait_frame(sig.SessionEnded)
            for _ in range(100):  # the agent closes the session's media
                if relay.stats().sessions == 0:
                    break
                await asyncio.sleep(0.05)
            assert relay.stats().sessions == 0
        finally:
            await asyncio.gather(box.close(), official.close())
        for _ in range(100):
            if len(seen) == 4:
                break
            await asyncio.sleep(0.05)
        assert [e.kind for e in seen] == ["requested", "accepted", "started", "ended"]
        assert agent.stats.answered == 2
    await agent.close()  # a second close does nothing
    assert agent.stats.connected is False


async def test_an_offer_the_relay_cannot_take_gets_media_failed(
    tmp_path: Path, relay: Relay
) -> None:
    async with (
        running_server(tmp_path) as running,
        agent_for(running, relay, subscribe_wait=0.5) as (agent, _),
    ):
        box, official, session = await in_session(running, "box-2")
        try:
            await box.send(sig.Offer(session_id=session, direction="publish", sdp="v=0\r\n"))
            failed = await box.wait_frame(sig.MediaFailed)
            assert (failed.code, failed.direction) == ("bad_offer", "publish")
            assert "publish offer of" in failed.message
            with pytest.raises(AssertionError, match="not_publishing"):
                await official.subscribe(session)  # the box never publishes
            assert agent.stats.failed == 2
        finally:
            await asyncio.gather(box.close(), official.close())


async def test_the_agent_reconnects_and_gets_every_event(tmp_path: Path, relay: Relay) -> None:
    async with running_server(tmp_path) as running, agent_for(running, relay) as (agent, seen):
        conn = running.server.rooms.relay
        assert conn is not None
        conn.close(sig.CLOSE_GOING_AWAY, "kicked by the test")  # the socket goes away
        box, official, session = await in_session(running, "box-3")  # events meanwhile
        try:
            for _ in range(200):
                if agent.stats.connections == 2 and len(seen) == 3:
                    break
                await asyncio.sleep(0.05)
            assert agent.stats.connections == 2
            assert [e.kind for e in seen] == ["requested", "accepted", "started"]
            await box.publish(session)  # the agent knows the session after reconnecting
            assert (await official.subscribe(session)).source == "box-3"
            await official.wait_frames(session, "box-3", 3)
        finally:
            await asyncio.gather(box.close(), official.close())
