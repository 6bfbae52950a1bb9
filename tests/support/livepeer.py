"""A minimal live-reception participant for tests: a signaling WebSocket plus aiortc peer
connections to the hub relay, over real UDP on 127.0.0.1.

    async with LivePeer(stack.signaling_url, stack.box_token("box-a"), "box-a") as box:
        request_id = await box.request_reception(case_no(), "噪音扰民", Category.CLAIM)
        started = await box.started()                 # once an official accepts
        await box.publish(started.session_id)         # stamped 640x480 H.264 at 15 fps
        await box.subscribe(started.session_id)       # the official's video (default source)
        await box.wait_frames(started.session_id, "zhang", 30)
        box.received[(session_id, "zhang")]            # frame numbers decoded, in order

``LivePeer(..., tone_hz=660.0)`` also publishes a sound: a pure tone of that frequency (48 kHz,
-12 dBFS, Opus), beside the video on the same connection.

Every frame a peer publishes carries its frame number and a millisecond clock in its top row
(``contracts.framestamp``); every decoded frame's stamp is recorded with its arrival time.
Frames the server sends are all kept in ``frames`` (in order); ``wait_frame`` waits for the
next one of a type (optionally matching a check) that has not been consumed yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from contracts import signaling as sig
from contracts.cases import Category
from edge.media.sources import SyntheticAudio
from edge.media.tracks import SourceTrack
from runtime.rtc import (
    EncodedTrack,
    KeyframeReason,
    install_low_latency,
    loopback_ice,
    rtc_configuration,
)
from tests.support.stamped import X264, read_stamp, stamped_frame

F = TypeVar("F")
WIDTH, HEIGHT, FPS = 640, 480, 15
WAIT = 15.0
"""Seconds to wait for a frame that must come (generous: the machine is shared)."""


@dataclass
class Publication:
    """One upstream to the relay: its connection and what it sent."""

    pc: RTCPeerConnection
    track: EncodedTrack
    sent: int = 0
    """frames sent so far (the last frame number is ``sent - 1``)"""
    keyframes: list[int] = field(default_factory=list)
    keyframe_requests: int = 0
    force_keyframe: bool = True
    task: asyncio.Task[None] | None = None
    audio: SourceTrack | None = None
    """the tone, when the peer has one (``tone_hz``)"""


@dataclass
class Subscription:
    """One downstream from the relay: the frame numbers decoded, with arrival times."""

    pc: RTCPeerConnection
    source: str | None = None
    stamps: list[int] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    unreadable: int = 0
    first_frame: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class LivePeer:
    def __init__(
        self,
        url: str,
        token: str,
        name: str = "peer",
        shade: int = 90,
        *,
        tone_hz: float | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.name = name
        self.shade = shade
        """Background luma of the pictures this peer publishes (to tell peers apart)."""
        self.tone_hz = tone_hz
        """Frequency of the tone this peer publishes with its video (None: no audio)."""
        self.frames: list[sig.Frame] = []
        """Every frame the server sent, in order."""
        self.welcome: sig.Welcome | None = None
        self.publications: dict[str, Publication] = {}
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        """By (session id, source)."""
        self.closed: tuple[int, str] | None = None
        """The close code and message once the server closed the socket."""
        self._consumed = 0
        self._changed = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._loopback: loopback_ice | None = None
        self._seen: set[int] = set()
        self._synced = 0

    async def __aenter__(self) -> LivePeer:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- signaling ---------------------------------------------------------------------------

    async def connect(self, expect_welcome: bool = True) -> sig.Welcome | None:
        install_low_latency()
        if self._loopback is None:
            self._loopback = loopback_ice()
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(f"{self.url}?token={self.token}")
        self._reader = asyncio.create_task(self._read(), name=f"livepeer {self.name}")
        if expect_welcome:
            self.welcome = await self.wait_frame(sig.Welcome)
        return self.welcome

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self.frames.append(sig.parse_frame(msg.data))
                    self._changed.set()
        finally:
            self.closed = (self._ws.close_code or 0, str(self._ws.extra or ""))
            self._changed.set()

    async def send(self, frame: sig.Frame | str) -> None:
        assert self._ws is not None, "not connected"
        await self._ws.send_str(frame if isinstance(frame, str) else frame.dump())

    async def wait_frame(
        self, kind: type[F], check: Callable[[F], bool] = lambda f: True, within: float = WAIT
    ) -> F:
        """The first frame of ``kind`` passing ``check`` that no earlier wait returned (frames
        of other kinds are left for other waits)."""
        deadline = time.monotonic() + within
        while True:
            for i, frame in enumerate(self.frames):
                if i not in self._seen and isinstance(frame, kind) and check(frame):
                    self._seen.add(i)
                    return frame
            if self.closed is not None:
                raise AssertionError(
                    f"{self.name}: socket closed {self.closed} while waiting for "
                    f"{kind.__name__}; frames: {self.frames[-5:]}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.name}: no {kind.__name__} within {within} s; last frames: "
                    f"{self.frames[-5:]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def sync(self) -> list[sig.Frame]:
        """A round trip to the server (an unknown frame type, answered by an error): returns
        every frame that arrived since the previous ``sync``, which are then all consumed. The
        server handles a socket's frames in order, so nothing meant for this peer before the
        round trip can still be on its way."""
        start = self._synced
        await self.send('{"type": "xfv_sync"}')
        await self.wait_frame(sig.Error, lambda e: e.frame_type == "xfv_sync")
        end = len(self.frames)
        self._seen.update(range(start, end))
        self._synced = end
        return [
            f
            for f in self.frames[start:end]
            if not (isinstance(f, sig.Error) and f.frame_type == "xfv_sync")
        ]

    def frames_of(self, kind: type[F]) -> list[F]:
        return [f for f in self.frames if isinstance(f, kind)]

    async def request_reception(
        self, case_no: str, summary: str = "小区噪音扰民", category: Category = Category.CLAIM
    ) -> str:
        """Box: ask for a reception; returns the request id once queued."""
        await self.send(sig.RequestReception(case_no=case_no, summary=summary, category=category))
        queued = await self.wait_frame(sig.Queued)
        return queued.request_id

    async def wait_queue(self, request_id: str) -> sig.Queue:
        """Official: a queue snapshot listing ``request_id``."""
        return await self.wait_frame(
            sig.Queue, lambda q: any(e.request_id == request_id for e in q.entries)
        )

    async def accept(
        self, request_id: str, video_codecs: list[sig.VideoCodec] | None = None
    ) -> sig.SessionStarted:
        """Official: take ``request_id`` (waiting until it is in the queue), decoding
        ``video_codecs`` (``None``: both; the box then publishes H.264)."""
        await self.wait_queue(request_id)
        await self.send(sig.Accept(request_id=request_id, video_codecs=video_codecs))
        return await self.started()

    async def started(self) -> sig.SessionStarted:
        """The next ``session_started``."""
        return await self.wait_frame(sig.SessionStarted)

    async def watch(self, session_id: str) -> sig.SessionStarted:
        """Monitor: watch ``session_id`` unseen."""
        await self.send(sig.Watch(session_id=session_id))
        return await self.wait_frame(sig.SessionStarted, lambda s: s.session_id == session_id)

    async def leave(self, session_id: str) -> None:
        await self.send(sig.Leave(session_id=session_id))

    async def end(self, session_id: str, reason: str = "completed") -> sig.SessionEnded:
        await self.send(sig.End(session_id=session_id, reason=reason))
        return await self.wait_frame(sig.SessionEnded, lambda e: e.session_id == session_id)

    # --- media -------------------------------------------------------------------------------

    async def publish(self, session_id: str) -> Publication:
        """Send stamped H.264 video to the relay for ``session_id`` (15 fps until closed),
        and the tone when the peer has one."""
        pc = RTCPeerConnection(rtc_configuration())
        pub = Publication(pc, EncodedTrack("video", max_queue=30))

        def on_request(reason: KeyframeReason) -> None:
            pub.keyframe_requests += 1
            pub.force_keyframe = True

        pub.track = EncodedTrack("video", max_queue=30, on_keyframe_request=on_request)
        transceiver = pc.addTransceiver(pub.track, direction="sendonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
        )
        pub.track.attach(transceiver.sender)
        if self.tone_hz is not None:
            pub.audio = SourceTrack(SyntheticAudio(frequency=self.tone_hz))
            pc.addTransceiver(pub.audio, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        await self.send(
            sig.Offer(session_id=session_id, direction="publish", sdp=pc.localDescription.sdp)
        )
        answer = await self._answer(session_id, "publish", None)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        pub.task = asyncio.create_task(self._send_frames(pub), name=f"{self.name} publish")
        self.publications[session_id] = pub
        return pub

    async def _send_frames(self, pub: Publication) -> None:
        encoder = X264(WIDTH, HEIGHT, FPS)
        start = time.monotonic()
        while True:
            keyframe, pub.force_keyframe = pub.force_keyframe, False
            frame_no = pub.sent
            for packet in encoder.encode(
                stamped_frame(frame_no, WIDTH, HEIGHT, FPS, self.shade), keyframe
            ):
                if packet.is_keyframe:
                    pub.keyframes.append(frame_no)
                pub.track.put(packet)
            pub.sent += 1
            await asyncio.sleep(max(0.0, start + pub.sent / FPS - time.monotonic()))

    async def subscribe(self, session_id: str, source: str | None = None) -> Subscription:
        """Receive one participant's video (default: the relay's choice, the other
        participant) and record the decoded frame numbers."""
        pc = RTCPeerConnection(rtc_configuration())
        sub = Subscription(pc)
        pc.on("track", lambda track: self._on_track(sub, track))
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        await self.send(
            sig.Offer(
                session_id=session_id,
                direction="subscribe",
                sdp=pc.localDescription.sdp,
                source=source,
            )
        )
        answer = await self._answer(session_id, "subscribe", source)
        sub.source = answer.source
        assert sub.source is not None, f"the relay's answer names no source: {answer!r}"
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        self.subscriptions[(session_id, sub.source)] = sub
        return sub

    async def _answer(self, session_id: str, direction: str, source: str | None) -> sig.Answer:
        def match(frame: sig.Answer | sig.MediaFailed) -> bool:
            return (
                frame.session_id == session_id
                and frame.direction == direction
                and (source is None or frame.source == source)
            )

        reply = await self.wait_frame(
            (sig.Answer, sig.MediaFailed),  # type: ignore[arg-type]
            match,
            within=WAIT + 15,
        )
        if isinstance(reply, sig.MediaFailed):
            raise AssertionError(f"{self.name}: the relay refused the {direction} offer: {reply}")
        assert isinstance(reply, sig.Answer)
        return reply

    def _on_track(self, sub: Subscription, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            sub.tasks.append(asyncio.create_task(self._decode(sub, track)))

    async def _decode(self, sub: Subscription, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                stamp = await asyncio.to_thread(read_stamp, frame)
                if stamp is None:
                    sub.unreadable += 1
                    continue
                sub.stamps.append(stamp[0])
                sub.arrivals.append(time.monotonic())
                sub.first_frame.set()

    def received(self, session_id: str, source: str) -> list[int]:
        sub = self.subscriptions.get((session_id, source))
        return list(sub.stamps) if sub else []

    async def wait_frames(
        self, session_id: str, source: str, count: int, within: float = WAIT
    ) -> list[int]:
        """Wait until ``count`` frames of ``source`` were decoded; returns their numbers."""
        deadline = time.monotonic() + within
        while len(stamps := self.received(session_id, source)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: {len(stamps)} of {count} frames of {source} in {within} s"
                )
            await asyncio.sleep(0.05)
        return stamps

    # --- closing -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop publishing, close every peer connection and the socket (safe twice)."""
        for pub in self.publications.values():
            if pub.task is not None:
                pub.task.cancel()
                await asyncio.gather(pub.task, return_exceptions=True)
                pub.task = None
            await pub.pc.close()
            if pub.audio is not None:
                pub.audio.stop()
                await pub.audio.source.close()
        for sub in self.subscriptions.values():
            await sub.pc.close()
            for task in sub.tasks:
                task.cancel()
            await asyncio.gather(*sub.tasks, return_exceptions=True)
            sub.tasks.clear()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._loopback is not None:
            self._loopback.__exit__(None, None, None)
            self._loopback = None
