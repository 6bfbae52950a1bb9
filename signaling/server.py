"""The signaling server: ``/ws`` (the protocol of ``contracts.signaling``) and ``/health``.

A socket authenticates first, with ``?token=...`` in the URL or a ``hello {token}`` frame
within ``hello_timeout``; a bad token gets an ``error`` frame (code ``invalid_token``) and the
socket is closed with ``CLOSE_INVALID_TOKEN`` (4401) and the reason. After that, a frame
that does not parse or is refused gets an ``error`` frame and the socket stays open. The
state lives in ``signaling.rooms.Rooms``; events go to an ``EventSink`` and, through the
outbox file ``events_db``, to the hub's relay (``signaling.sink.RelayFeed``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from contracts.access import Claims
from contracts.errors import InvalidToken
from contracts.signaling import (
    CLOSE_GOING_AWAY,
    CLOSE_HELLO_TIMEOUT,
    CLOSE_INVALID_TOKEN,
    EVENT_WINDOW,
    Error,
    FrameError,
    Hello,
    is_relay,
    parse_frame,
)
from runtime.http import serve
from runtime.logs import QuietLogger
from signaling import __version__
from signaling.auth import check_token, token_key
from signaling.config import SignalingConfig
from signaling.connection import Connection
from signaling.outbox import EventOutbox
from signaling.rooms import Rooms
from signaling.sink import EventSink, LogSink, RelayFeed

log = logging.getLogger(__name__)
quiet = QuietLogger(log)

MAX_MESSAGE_BYTES = 1024 * 1024
"""aiohttp closes a socket (1009) on a larger message; up to this size, a frame over
``MAX_FRAME_BYTES`` gets an ``error`` frame instead and the socket stays."""
WS_PATH = "/ws"


@dataclass
class State:
    config: SignalingConfig
    key: bytes | None
    rooms: Rooms
    pending: set[web.WebSocketResponse] = field(default_factory=set)
    """Sockets still in their hello phase (closed on shutdown)."""


STATE = web.AppKey("signaling", State)


async def health(request: web.Request) -> web.Response:
    rooms = request.app[STATE].rooms
    return web.json_response(
        {
            "status": "ok",
            "service": "signaling",
            "version": __version__,
            "rooms": len(rooms.sessions),
            **rooms.stats(),
        }
    )


async def websocket(request: web.Request) -> web.WebSocketResponse:
    state = request.app[STATE]
    ws = web.WebSocketResponse(heartbeat=state.config.heartbeat, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    state.pending.add(ws)
    try:
        claims = await _authenticate(ws, request, state)
    finally:
        state.pending.discard(ws)
    if claims is None:
        return ws
    outbox = state.config.outbox_frames
    if is_relay(claims):  # besides its other frames, up to a window of unacknowledged events
        outbox += EVENT_WINDOW
    conn = Connection(claims, outbox)
    state.rooms.join(conn)
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(conn.pump(ws), name=f"signaling pump {conn.who}")
            try:
                await _read(ws, conn, state.rooms)
            finally:
                conn.close()
    finally:
        state.rooms.drop(conn)
        log.info("%s: socket closed (code %s)", conn.who, ws.close_code)
    return ws


async def _authenticate(
    ws: web.WebSocketResponse, request: web.Request, state: State
) -> Claims | None:
    """The claims of the socket's token, or ``None`` after refusing and closing it."""
    token = request.query.get("token")
    if token is None:
        token = await _hello(ws, state.config.hello_timeout)
        if token is None:
            return None
    try:
        return check_token(state.key, token)
    except InvalidToken as exc:
        quiet.warning("token", "refused a socket from %s: %s", request.remote, exc)
        await _refuse(ws, "invalid_token", str(exc), CLOSE_INVALID_TOKEN)
        return None


async def _hello(ws: web.WebSocketResponse, wait_s: float) -> str | None:
    """Wait for ``hello``; bad frames meanwhile get ``error`` frames. ``None``: closed."""
    try:
        async with asyncio.timeout(wait_s):
            while True:
                msg = await ws.receive()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    return None
                if msg.type is WSMsgType.ERROR:
                    return None
                if msg.type is not WSMsgType.TEXT:
                    await _error(ws, "bad_json", "binary messages are not frames: send JSON text")
                    continue
                try:
                    frame = parse_frame(msg.data)
                except FrameError as exc:
                    await _error(ws, exc.code, str(exc), exc.frame_type)
                    continue
                if isinstance(frame, Hello):
                    return frame.token
                await _error(
                    ws, "hello_first", f"send hello {{token}} before {frame.type!r}", frame.type
                )
    except TimeoutError:
        await _refuse(
            ws, "hello_timeout", f"no hello frame within {wait_s:g} s", CLOSE_HELLO_TIMEOUT
        )
        return None


async def _error(
    ws: web.WebSocketResponse, code: str, message: str, frame_type: str | None = None
) -> None:
    try:
        await ws.send_str(Error(code=code, message=message, frame_type=frame_type).dump())
    except (ConnectionError, RuntimeError) as exc:
        log.debug("cannot send error frame: %s", exc)


async def _refuse(ws: web.WebSocketResponse, code: str, message: str, close_code: int) -> None:
    await _error(ws, code, message)
    await ws.close(code=close_code, message=message.encode()[:123])


async def _read(ws: web.WebSocketResponse, conn: Connection, rooms: Rooms) -> None:
    async for msg in ws:
        if conn.closing is not None:  # replaced, refused or too slow: act on nothing more
            continue
        if msg.type is WSMsgType.TEXT:
            try:
                frame = parse_frame(msg.data)
            except FrameError as exc:
                quiet.warning(f"frame:{exc.code}", "%s: bad frame: %s", conn.who, exc)
                conn.error(exc.code, str(exc), exc.frame_type)
                continue
            try:
                rooms.handle(conn, frame)
            except Exception:  # a bug: keep the socket, say so, keep the traceback
                log.exception("%s: failed on %s", conn.who, frame.type)
                conn.error("internal", "the server failed on this frame", frame.type)
        elif msg.type is WSMsgType.BINARY:
            conn.error("bad_json", "binary messages are not frames: send JSON text")
        elif msg.type is WSMsgType.ERROR:
            log.info("%s: socket error: %s", conn.who, ws.exception())


def create_app(config: SignalingConfig, sink: EventSink | None = None) -> web.Application:
    """The aiohttp application; ``sink`` receives the session events (default: the log)."""
    key = token_key(config)
    if key is None:
        log.warning("token_secret_file is unset: every signaling connection will be refused")
    if config.events_db is None:
        log.warning(
            "events_db is unset: session events not yet acknowledged by the hub are kept in "
            "memory only and lost if the server stops"
        )
    feed = RelayFeed(EventOutbox(config.events_db), warn_backlog=config.event_buffer)
    rooms = Rooms(sink or LogSink(), grace=config.rejoin_grace, events=feed)
    state = State(config, key, rooms)
    app = web.Application()
    app[STATE] = state

    async def shutdown(app: web.Application) -> None:
        state.rooms.close()
        for ws in list(state.pending):
            await ws.close(code=CLOSE_GOING_AWAY, message=b"server shutting down")

    async def close_outbox(app: web.Application) -> None:
        feed.close()  # after ``shutdown``: the events of sessions it ended are stored

    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(close_outbox)
    app.router.add_get(WS_PATH, websocket)
    app.router.add_get("/health", health)
    app.router.add_get("/api/v1/health", health)
    return app


class SignalingServer:
    """Serves ``create_app`` until cancelled; ``port`` is the bound port once ``ready``."""

    def __init__(self, config: SignalingConfig, sink: EventSink | None = None) -> None:
        self.config = config
        self.sink = sink
        self.port: int | None = None
        self.ready = asyncio.Event()
        self.app: web.Application | None = None

    @property
    def rooms(self) -> Rooms:
        assert self.app is not None, "not running"
        return self.app[STATE].rooms

    async def run(self) -> None:
        http = self.config.http
        self.app = create_app(self.config, self.sink)
        async with serve(self.app, http.host, http.port) as port:
            self.port = port
            log.info("signaling on ws://%s:%d%s", http.host, port, WS_PATH)
            self.ready.set()
            await asyncio.Event().wait()
