"""A minimal relay agent for the box's call tests: the hub's ``hub.media.Relay`` on a real
signaling socket, answering participants' offers (until ``hub/media/agent.py`` and
``tests/support/live.py`` give the whole hub).

It answers ``offer publish`` with ``Relay.publish`` and ``offer subscribe`` with
``Relay.subscribe`` once the source publishes (it waits up to ``SOURCE_WAIT`` seconds: the box
and the official offer at the same moment), and closes a session's media on ``session_ended``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

import aiohttp

from contracts import signaling as sig
from hub.media.relay import Relay

log = logging.getLogger(__name__)
SOURCE_WAIT = 10.0


class RelayAgent:
    def __init__(self, relay: Relay, url: str, key: bytes) -> None:
        self.relay = relay
        self.url = url
        self.token = sig.mint_relay_token(key, "51", dt.timedelta(minutes=10))
        self.sessions: dict[str, list[str]] = {}
        self.answers = 0
        self.failures: list[str] = []
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(self.url) as ws:
            self._ws = ws
            await ws.send_str(sig.Hello(token=self.token).dump())
            try:
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    frame = sig.parse_frame(msg.data)
                    if isinstance(frame, sig.Welcome):
                        self.ready.set()
                    elif isinstance(frame, sig.SessionStarted):
                        self.sessions[frame.session_id] = [p.sub for p in frame.peers]
                    elif isinstance(frame, sig.Offer):
                        task = asyncio.create_task(self._answer(frame))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                    elif isinstance(frame, sig.SessionEnded):
                        for peer in self.sessions.pop(frame.session_id, []):
                            await self.relay.leave(frame.session_id, peer)
            finally:
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _answer(self, offer: sig.Offer) -> None:
        assert offer.peer is not None and self._ws is not None
        try:
            if offer.direction == "publish":
                sdp = await self.relay.publish(offer.session_id, offer.peer, offer.sdp)
            else:
                source = offer.source or next(
                    p for p in self.sessions.get(offer.session_id, []) if p != offer.peer
                )
                await self._wait_publishing(offer.session_id, source)
                sdp = await self.relay.subscribe(offer.session_id, offer.peer, source, offer.sdp)
        except Exception as exc:
            self.failures.append(f"{offer.direction} of {offer.peer}: {exc!r}")
            log.warning("test relay agent: %s", self.failures[-1])
            return
        answer = sig.Answer(
            session_id=offer.session_id, direction=offer.direction, sdp=sdp, peer=offer.peer
        )
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._ws.send_str(answer.dump())
            self.answers += 1

    async def _wait_publishing(self, session_id: str, source: str) -> None:
        deadline = asyncio.get_running_loop().time() + SOURCE_WAIT
        while not any(
            f.session_id == session_id and f.participant_id == source
            for f in self.relay.stats().feeds
        ):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{source} did not publish in {session_id}")
            await asyncio.sleep(0.05)
