"""The relay agent: the hub relay's WebSocket client of the signaling server.

The signaling server routes media negotiation between participants and the relay
(``contracts.signaling``, "Media routing"). The agent connects as the relay (a SIGNALING token
of ``mint_relay_token``, minted afresh for every connection), and then:

- ``offer`` (publish) → :meth:`Relay.publish` → ``answer``;
- ``offer`` (subscribe) → :meth:`Relay.subscribe` for ``source`` (default: the session's other
  participant; for a monitor, the box) → ``answer`` naming the source. The subscriber is
  hidden when it is not a visible participant (a monitor). When the source does not publish
  yet, the offer waits up to ``subscribe_wait`` seconds for it;
- any offer it cannot answer → ``media_failed`` with a code and the reason;
- ``ice`` → ignored (the relay and every participant send complete offers and answers);
- ``peer_left`` (a monitor stopped watching) → :meth:`Relay.leave` for it;
- ``session_ended`` → :meth:`Relay.leave` for everyone the session had;
- ``event`` → ``on_event`` (the hub writes it to the case timeline), one at a time, in order;
  once ``on_event`` has returned (the hub's write transaction committed), ``event_ack {seq}``
  on the socket the event came by. Acks are cumulative: a run of events that arrived
  together is acknowledged once, after its last one. When ``on_event`` raises, it is tried
  again (backoff up to ``EVENT_RETRY_MAX`` seconds) while that socket is open; if the socket
  closes first, that event and the later ones of the socket are left unacknowledged and
  signaling sends them again on the next socket, in order. An event may thus reach
  ``on_event`` twice: it must be idempotent (``hub.store.live.record_event`` is).

It reconnects with exponential backoff. After a reconnect the server sends ``session_started``
for every live session; media of sessions it does not mention within ``reconcile_after``
seconds (they ended while the agent was away) is closed.

Lifecycle: ``start``/``close`` (or ``async with``); ``close`` is safe to call twice and leaves
no task behind. The relay itself belongs to the caller (the hub app), which stops it after the
agent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from contracts import signaling as sig
from hub.media.errors import BadOffer, CodecMismatch, NotPublishing, RelayError
from hub.media.relay import Relay
from runtime.logs import QuietLogger

log = logging.getLogger(__name__)
quiet = QuietLogger(log)

EventHandler = Callable[[sig.LiveEvent], Awaitable[None]]
RELAY_TOKEN_TTL = dt.timedelta(minutes=10)
"""The token is checked once, when the socket opens; a fresh one is minted for every socket."""
ENDED_MEMORY = 1000
"""How many ended session ids are remembered (a late offer for one is refused)."""
EVENT_RETRY_MAX = 5.0
"""Longest wait, in seconds, between tries of an event ``on_event`` failed on."""
ACK_EVERY = 32
"""Acknowledge at least every this many events even while more are waiting."""


@dataclass
class _SessionMedia:
    """What the agent knows of a live session: its visible participants (sub → part) and every
    subject that negotiated media in it."""

    peers: dict[str, sig.Part] = field(default_factory=dict)
    members: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class AgentStats:
    connected: bool
    connections: int
    answered: int
    failed: int
    events: int
    sessions: int
    acked_seq: int = 0
    """The newest ``seq`` acknowledged to signaling (on any socket)."""


async def _log_event(event: sig.LiveEvent) -> None:
    log.info("live event %s", sig.event_json(event))


class RelayAgent:
    def __init__(
        self,
        relay: Relay,
        url: str,
        key: bytes,
        jurisdiction: str,
        *,
        on_event: EventHandler | None = None,
        reconnect_min: float = 0.5,
        reconnect_max: float = 10.0,
        subscribe_wait: float = 15.0,
        reconcile_after: float = 2.0,
        heartbeat: float = 15.0,
    ) -> None:
        self.relay = relay
        self.url = url
        self.key = key
        self.jurisdiction = jurisdiction
        self.on_event = on_event or _log_event
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.subscribe_wait = subscribe_wait
        self.reconcile_after = reconcile_after
        self.heartbeat = heartbeat
        self.connected = asyncio.Event()
        """Set while the agent holds a welcomed socket."""
        self._sessions: dict[str, _SessionMedia] = {}
        self._confirmed: set[str] = set()
        """Sessions the server announced since the last welcome."""
        self._cleanup: set[asyncio.Task[None]] = set()
        """Closing media (leave, session end): outlives a socket, cancelled by ``close``."""
        self._ended: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._published = asyncio.Event()
        self._locks: dict[tuple[str, str, str, str], asyncio.Lock] = {}
        self._events: asyncio.Queue[tuple[_Link, sig.EventFrame] | None] = asyncio.Queue()
        self._http: aiohttp.ClientSession | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._event_task: asyncio.Task[None] | None = None
        self._state = "new"
        self._connections = 0
        self._answered = 0
        self._failed = 0
        self._event_count = 0
        self._acked_seq = 0

    async def __aenter__(self) -> RelayAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def stats(self) -> AgentStats:
        return AgentStats(
            connected=self.connected.is_set(),
            connections=self._connections,
            answered=self._answered,
            failed=self._failed,
            events=self._event_count,
            sessions=len(self._sessions),
            acked_seq=self._acked_seq,
        )

    async def start(self) -> None:
        if self._state != "new":
            raise RelayError(f'cannot start a relay agent in state "{self._state}"')
        self._state = "running"
        self._http = aiohttp.ClientSession()
        self._event_task = asyncio.create_task(self._handle_events(), name="relay agent events")
        self._run_task = asyncio.create_task(self._run(), name="relay agent")
        log.info("relay agent: signaling at %s", self.url)

    async def close(self) -> None:
        """Disconnect, hand the events already received to ``on_event`` (5 s at most; they are
        not acknowledged any more, so signaling sends them again to the next agent), stop.
        Safe to call twice; the relay keeps running."""
        if self._state != "running":
            self._state = "closed"
            return
        self._state = "closing"
        if self._run_task is not None:
            self._run_task.cancel()
            await asyncio.gather(self._run_task, return_exceptions=True)
        cleanup = list(self._cleanup)
        for task in cleanup:
            task.cancel()
        await asyncio.gather(*cleanup, return_exceptions=True)
        if self._event_task is not None:
            self._events.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(self._event_task), 5.0)
            except TimeoutError:
                log.error("relay agent: %d events not written at close", self._events.qsize())
                self._event_task.cancel()
                await asyncio.gather(self._event_task, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        self.connected.clear()
        self._state = "closed"
        log.info("relay agent stopped")

    # --- the connection ----------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                welcomed = await self._connect()
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                quiet.warning("connect", "relay agent: cannot reach %s: %s", self.url, exc)
                welcomed = False
            except Exception:
                log.exception("relay agent: connection to %s failed", self.url)
                welcomed = False
            finally:
                self.connected.clear()
            attempt = 0 if welcomed else attempt + 1
            delay = min(self.reconnect_max, self.reconnect_min * 2 ** min(attempt, 16))
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    async def _connect(self) -> bool:
        """One socket until it closes; whether it was welcomed."""
        assert self._http is not None
        token = sig.mint_relay_token(self.key, self.jurisdiction, RELAY_TOKEN_TTL)
        url = URL(self.url).update_query(token=token)
        welcomed = False
        async with self._http.ws_connect(url, heartbeat=self.heartbeat) as ws:
            link = _Link(ws)
            try:
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        if msg.type is aiohttp.WSMsgType.ERROR:
                            log.warning("relay agent: socket error: %s", ws.exception())
                        continue
                    try:
                        frame = sig.parse_frame(msg.data)
                    except sig.FrameError as exc:
                        quiet.warning("frame", "relay agent: bad frame from signaling: %s", exc)
                        continue
                    if isinstance(frame, sig.Welcome):
                        welcomed = True
                        self._welcomed(link)
                    else:
                        self._dispatch(link, frame)
            finally:
                await link.close()
        code = ws.close_code
        if code == sig.CLOSE_INVALID_TOKEN:
            log.error("relay agent: signaling refused the relay token (is it the hub's key?)")
        else:
            log.info("relay agent: socket closed (code %s)", code)
        return welcomed

    def _welcomed(self, link: _Link) -> None:
        self._connections += 1
        self.connected.set()
        log.info("relay agent: connected to %s as the relay", self.url)
        self._confirmed.clear()
        stale = set(self._sessions)
        if stale:
            link.spawn(self._reconcile(stale), "reconcile")

    async def _reconcile(self, stale: set[str]) -> None:
        await asyncio.sleep(self.reconcile_after)
        for session_id in stale:
            if session_id in self._sessions and session_id not in self._confirmed:
                log.info("relay agent: session %s ended while away; closing media", session_id)
                self._remember_ended(session_id)
                await self._close_session(session_id)

    def _dispatch(self, link: _Link, frame: sig.Frame) -> None:
        match frame:
            case sig.SessionStarted():
                media = self._sessions.setdefault(frame.session_id, _SessionMedia())
                media.peers = {p.sub: p.part for p in frame.peers}
                self._confirmed.add(frame.session_id)
            case sig.Offer():
                link.spawn(self._negotiate(link, frame), f"offer {frame.session_id}")
            case sig.Ice():
                log.debug(
                    "relay agent: ignored ice of %s in %s (offers carry every candidate)",
                    frame.peer,
                    frame.session_id,
                )
            case sig.PeerLeft():
                if (known := self._sessions.get(frame.session_id)) is not None:
                    known.members.discard(frame.peer)
                self._spawn(self.relay.leave(frame.session_id, frame.peer), "peer_left")
            case sig.SessionEnded():
                self._remember_ended(frame.session_id)
                self._spawn(self._close_session(frame.session_id), "session_ended")
            case sig.EventFrame():
                self._events.put_nowait((link, frame))
            case sig.Error():
                quiet.warning(
                    f"error:{frame.code}",
                    "relay agent: signaling refused %s: %s",
                    frame.frame_type,
                    frame.message,
                )
            case _:
                log.debug("relay agent: ignored %s", frame.type)

    # --- media -------------------------------------------------------------------------------

    async def _negotiate(self, link: _Link, offer: sig.Offer) -> None:
        session_id, peer = offer.session_id, offer.peer
        if peer is None:
            log.warning("relay agent: offer in %s without peer; ignored", session_id)
            return
        if session_id in self._ended:
            await self._fail(link, offer, None, "session_ended", "the session has ended")
            return
        media = self._sessions.setdefault(session_id, _SessionMedia())
        source: str | None = None
        try:
            if offer.direction == "publish":
                async with self._lock(session_id, peer, "publish", ""):
                    media.members.add(peer)
                    sdp = await self.relay.publish(session_id, peer, offer.sdp)
                if session_id in self._ended:  # ended while negotiating
                    await self.relay.leave(session_id, peer)
                    return
                self._published.set()
                self._published = asyncio.Event()
            else:
                source = offer.source or self._default_source(media, peer)
                if source is None:
                    await self._fail(
                        link, offer, None, "no_source", "the session has no other participant"
                    )
                    return
                async with self._lock(session_id, peer, "subscribe", source):
                    media.members.add(peer)
                    sdp = await self._subscribe(session_id, peer, source, offer.sdp, media)
        except NotPublishing as exc:
            await self._fail(link, offer, source, "not_publishing", str(exc))
            return
        except BadOffer as exc:
            await self._fail(link, offer, source, "bad_offer", str(exc))
            return
        except CodecMismatch as exc:
            await self._fail(link, offer, source, "codec_mismatch", str(exc))
            return
        except RelayError as exc:
            await self._fail(link, offer, source, "relay_error", str(exc))
            return
        self._answered += 1
        await link.send(
            sig.Answer(
                session_id=session_id,
                direction=offer.direction,
                sdp=sdp,
                peer=peer,
                source=source,
            )
        )

    async def _subscribe(
        self, session_id: str, peer: str, source: str, sdp: str, media: _SessionMedia
    ) -> str:
        """Subscribe, waiting up to ``subscribe_wait`` for ``source`` to publish."""
        hidden = peer not in media.peers
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.subscribe_wait
        while True:
            published = self._published
            try:
                return await self.relay.subscribe(session_id, peer, source, sdp, hidden=hidden)
            except NotPublishing:
                left = deadline - loop.time()
                if left <= 0 or session_id in self._ended:
                    raise
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(published.wait(), left)

    @staticmethod
    def _default_source(media: _SessionMedia, peer: str) -> str | None:
        """The participant ``peer`` sees by default: the other visible participant; for a
        hidden subscriber (a monitor), the box."""
        if peer in media.peers:
            others = [sub for sub in media.peers if sub != peer]
            return others[0] if others else None
        return next((sub for sub, part in media.peers.items() if part == "box"), None)

    def _lock(self, *key: str) -> asyncio.Lock:
        k = (key[0], key[1], key[2], key[3])
        lock = self._locks.get(k)
        if lock is None:
            lock = self._locks[k] = asyncio.Lock()
        return lock

    async def _fail(
        self, link: _Link, offer: sig.Offer, source: str | None, code: str, message: str
    ) -> None:
        self._failed += 1
        quiet.warning(
            f"fail:{code}",
            "relay agent: %s offer of %s in %s failed: %s",
            offer.direction,
            offer.peer,
            offer.session_id,
            message,
        )
        await link.send(
            sig.MediaFailed(
                session_id=offer.session_id,
                direction=offer.direction,
                source=source or offer.source,
                peer=offer.peer,
                code=code,
                message=message[:1000],
            )
        )

    def _remember_ended(self, session_id: str) -> None:
        self._ended[session_id] = None
        while len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)

    async def _close_session(self, session_id: str) -> None:
        media = self._sessions.pop(session_id, None)
        self._locks = {k: v for k, v in self._locks.items() if k[0] != session_id}
        if media is None:
            return
        for sub in sorted(media.members | set(media.peers)):
            await self.relay.leave(session_id, sub)
        log.info("relay agent: closed the media of session %s", session_id)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=f"relay agent {name}")
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup_done)

    def _cleanup_done(self, task: asyncio.Task[None]) -> None:
        self._cleanup.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("relay agent: task %s failed", task.get_name(), exc_info=exc)

    # --- events ------------------------------------------------------------------------------

    async def _handle_events(self) -> None:
        while (item := await self._events.get()) is not None:
            link, frame = item
            if link.events_broken:
                continue  # an earlier event of this socket was not recorded: it comes again
            self._event_count += 1
            if not await self._record(link, frame.event):
                link.events_broken = True
                continue
            link.ack_due = frame.seq
            link.unacked += 1
            if self._events.empty() or link.unacked >= ACK_EVERY:
                await self._ack(link)

    async def _record(self, link: _Link, event: sig.LiveEvent) -> bool:
        """``on_event(event)``, tried again while ``link`` is open; whether it succeeded."""
        delay, tries = 0.1, 0
        while True:
            tries += 1
            try:
                await self.on_event(event)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if tries == 1:
                    log.exception(
                        "relay agent: could not record %s event of %s; trying again",
                        event.kind,
                        event.case_no,
                    )
                else:  # the traceback was logged once
                    quiet.warning(
                        "record",
                        "relay agent: %s event of %s still not recorded (try %d): %s",
                        event.kind,
                        event.case_no,
                        tries,
                        exc,
                    )
            if link.closed or self._state != "running":
                log.warning(
                    "relay agent: %s event of %s left unacknowledged: signaling sends it again",
                    event.kind,
                    event.case_no,
                )
                return False
            await asyncio.sleep(delay)
            delay = min(EVENT_RETRY_MAX, delay * 2)

    async def _ack(self, link: _Link) -> None:
        seq = link.ack_due
        if seq is None or link.closed:
            return
        link.ack_due, link.unacked = None, 0
        if await link.send(sig.EventAck(seq=seq)):
            self._acked_seq = seq


class _Link:
    """One socket's sending side and the tasks working for it (cancelled when it closes)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.ack_due: int | None = None
        """The newest event of this socket recorded at the hub and not acknowledged yet."""
        self.unacked = 0
        self.events_broken = False
        """An event of this socket could not be recorded: acknowledge nothing more on it."""
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed or self.ws.closed

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=f"relay agent {name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("relay agent: task %s failed", task.get_name(), exc_info=exc)

    async def send(self, frame: sig.Frame) -> bool:
        """Send ``frame``; whether it was handed to the socket."""
        async with self._lock:
            try:
                await self.ws.send_str(frame.dump())
                return True
            except (ConnectionError, RuntimeError) as exc:
                log.info("relay agent: could not send %s: %s", frame.type, exc)
                return False

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
