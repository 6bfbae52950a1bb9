"""The kiosk's speaker: the official's voice, streamed to the kiosk pages over a WebSocket.

``GET /api/v1/live/speaker`` (WebSocket; access as for the other live routes: the box's own
screen, or the clerk's token from the LAN). The socket stays open between calls; while a call
is up the box sends the official's audio as binary messages, one per 20 ms:

    offset 0   uint32 little-endian   sequence number of the chunk (counts every chunk the
                                      box made since it started; a gap = chunks dropped for
                                      this listener)
    offset 4   960 x int16 LE         48 kHz mono signed 16-bit PCM (1920 bytes)

and text messages (JSON) that say what is going on:

    {"type": "hello", "sample_rate": 48000, "channels": 1, "sample_format": "s16le",
     "chunk_samples": 960, "header_bytes": 4}       once, first
    {"type": "call", "session_id": "..."}             a call's audio begins (also on connect
                                                      during a call)
    {"type": "idle"}                                  the call is over; nothing until the next

The page sends nothing (anything it sends is ignored). Each listener has its own bounded queue
(``QUEUE_CHUNKS``, 200 ms): a listener that does not keep up loses its oldest chunks (counted
in ``Listener.dropped``) and never holds up the call or the other listeners. The kernel's send
buffer of the socket is kept small (``SEND_BUFFER``) so that a slow page does not pile up
seconds of late audio there either.

``Speaker`` follows ``LiveService.call`` (its state changes), hangs one sink on each call's
``remote_audio_sinks`` (``edge.live.call.BoxCall``), resamples what aiortc decodes (48 kHz
stereo from Opus) with ``av.AudioResampler`` and cuts it into the 20 ms chunks above.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import av
from aiohttp import WSCloseCode, web

from edge.kiosk.cases_api import guarded
from edge.live.call import BoxCall
from edge.live.service import LiveService

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
CHANNELS = 1
CHUNK_SAMPLES = 960
"""20 ms at 48 kHz."""
CHUNK_BYTES = CHUNK_SAMPLES * 2 * CHANNELS
HEADER = struct.Struct("<I")
"""Before each chunk: its sequence number (uint32 LE, wrapping)."""
QUEUE_CHUNKS = 10
"""Chunks (200 ms) a listener may have waiting before its oldest are dropped."""
SEND_BUFFER = 32 * 1024
"""Kernel send buffer of a speaker socket (Linux doubles it): about 0.3 s of audio."""
HEARTBEAT = 10.0
"""Seconds between pings: a page that vanished without closing is noticed."""
FOLLOW_SECONDS = 1.0
"""At most this long between looks at the service's call, changes or not."""
HELLO = json.dumps(
    {
        "type": "hello",
        "sample_rate": SAMPLE_RATE,
        "channels": CHANNELS,
        "sample_format": "s16le",
        "chunk_samples": CHUNK_SAMPLES,
        "header_bytes": HEADER.size,
    }
)
IDLE = json.dumps({"type": "idle"})

Message = bytes | str


class Listener:
    """One page's queue: chunks and notices waiting to be sent, oldest chunk dropped first."""

    def __init__(self, name: str, limit: int = QUEUE_CHUNKS) -> None:
        self.name = name
        self.limit = limit
        self.sent = 0
        """audio chunks handed to the socket"""
        self.dropped = 0
        """audio chunks dropped because the page did not keep up"""
        self.closed = False
        self._queue: deque[Message] = deque()
        self._ready = asyncio.Event()

    def put(self, message: Message) -> None:
        if self.closed:
            return
        if len(self._queue) >= self.limit:
            oldest = next((m for m in self._queue if isinstance(m, bytes)), self._queue[0])
            self._queue.remove(oldest)
            if isinstance(oldest, bytes):
                self.dropped += 1
        self._queue.append(message)
        self._ready.set()

    def close(self) -> None:
        """No more messages: ``get`` answers ``None`` once the queue is empty."""
        self.closed = True
        self._ready.set()

    async def get(self) -> Message | None:
        while not self._queue:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    @property
    def queued(self) -> int:
        return len(self._queue)


class Speaker:
    """Fans the official's audio out to every listening page. ``start`` (from the app's
    start-up) follows the service's calls until ``close`` (safe twice)."""

    def __init__(self, service: LiveService, queue_chunks: int = QUEUE_CHUNKS) -> None:
        self.service = service
        self.queue_chunks = queue_chunks
        self.listeners: set[Listener] = set()
        self.chunks = 0
        """chunks made since start; the next one's sequence number"""
        self._call: BoxCall | None = None
        self._resampler: av.AudioResampler | None = None
        self._pending = bytearray()
        self._follower: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        if self._follower is None and not self._closed:
            self._follower = asyncio.create_task(self._follow_calls(), name="kiosk speaker")

    async def close(self) -> None:
        """Stop following calls and end every listener's socket (safe twice)."""
        if self._closed:
            return
        self._closed = True
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        self._attach(None, announce=False)
        for listener in list(self.listeners):
            listener.close()

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``."""
        await self.start()
        yield
        await self.close()

    # -- listeners ----------------------------------------------------------------------------

    def listen(self, name: str) -> Listener:
        listener = Listener(name, self.queue_chunks)
        listener.put(HELLO)
        if self._call is not None:
            listener.put(self._call_notice(self._call))
        if self._closed:
            listener.close()
        self.listeners.add(listener)
        log.info("speaker: %s listens (%d listening)", name, len(self.listeners))
        return listener

    def unlisten(self, listener: Listener) -> None:
        listener.close()
        if listener in self.listeners:
            self.listeners.discard(listener)
            log.info(
                "speaker: %s left: %d chunks sent, %d dropped",
                listener.name,
                listener.sent,
                listener.dropped,
            )

    def _broadcast(self, message: Message) -> None:
        for listener in self.listeners:
            listener.put(message)

    # -- calls ----------------------------------------------------------------------------------

    async def _follow_calls(self) -> None:
        service = self.service
        while True:
            version = service.version
            try:
                self._attach(service.call)
            except Exception:
                log.exception("speaker: following the call failed")
            await service.wait_change(version, FOLLOW_SECONDS)

    def _attach(self, call: BoxCall | None, announce: bool = True) -> None:
        """Take the audio of ``call`` (None: no call) instead of the previous call's."""
        old = self._call
        if call is old:
            return
        if old is not None:
            with contextlib.suppress(ValueError):
                old.remote_audio_sinks.remove(self._on_frame)
            if announce:
                self._broadcast(IDLE)
        self._call, self._resampler = call, None
        self._pending.clear()
        if call is not None:
            call.remote_audio_sinks.append(self._on_frame)
            if announce:
                self._broadcast(self._call_notice(call))
            log.info("speaker: playing the official's audio of %s", call.name)

    @staticmethod
    def _call_notice(call: BoxCall) -> str:
        return json.dumps({"type": "call", "session_id": call.session_id})

    def _on_frame(self, frame: av.AudioFrame) -> None:
        """A decoded frame of the official (``BoxCall.remote_audio_sinks``)."""
        if not self.listeners:
            return
        for out in self._resample(frame):
            pcm = out.to_ndarray().astype("<i2", copy=False)
            self._pending += pcm.tobytes()
        while len(self._pending) >= CHUNK_BYTES:
            chunk = HEADER.pack(self.chunks & 0xFFFFFFFF) + bytes(self._pending[:CHUNK_BYTES])
            del self._pending[:CHUNK_BYTES]
            self.chunks += 1
            self._broadcast(chunk)

    def _resample(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            return list(self._resampler.resample(frame))
        except ValueError:  # the decoder's format changed mid-call: start a new resampler
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            return list(self._resampler.resample(frame))

    def stats(self) -> dict[str, Any]:
        return {
            "chunks": self.chunks,
            "listeners": [
                {"name": x.name, "sent": x.sent, "dropped": x.dropped, "queued": x.queued}
                for x in self.listeners
            ],
        }


SPEAKER: web.AppKey[Speaker] = web.AppKey("speaker", Speaker)


def _small_send_buffer(request: web.Request) -> None:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


async def _pump(ws: web.WebSocketResponse, listener: Listener) -> None:
    """Send the listener's queue until it closes or the page goes; then close the socket."""
    try:
        while (message := await listener.get()) is not None:
            if isinstance(message, bytes):
                await ws.send_bytes(message)
                listener.sent += 1
            else:
                await ws.send_str(message)
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(ConnectionError):
            await ws.close(code=WSCloseCode.GOING_AWAY)


@guarded(local_ok=True)
async def speaker_socket(request: web.Request) -> web.StreamResponse:
    speaker = request.app[SPEAKER]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT)
    await ws.prepare(request)
    _small_send_buffer(request)
    listener = speaker.listen(str(request.remote))
    pump = asyncio.create_task(_pump(ws, listener), name=f"speaker to {listener.name}")
    try:
        async for _ in ws:  # the page says nothing; reading notices its close
            pass
    finally:
        speaker.unlisten(listener)
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        with contextlib.suppress(ConnectionError):
            await ws.close()
    return ws


def install(app: web.Application, service: LiveService) -> Speaker:
    """``GET /api/v1/live/speaker``, and the speaker following ``service``'s calls while the
    app runs."""
    speaker = Speaker(service)
    app[SPEAKER] = speaker

    async def shutdown(app: web.Application) -> None:
        await speaker.close()  # before aiohttp cancels the handlers: pages see a clean close

    app.cleanup_ctx.append(speaker.context)
    app.on_shutdown.append(shutdown)
    app.router.add_get("/api/v1/live/speaker", speaker_socket)
    return speaker
