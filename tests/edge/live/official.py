"""An official for the box's call tests: a real signaling socket and real aiortc peers that
publish stamped H.264 (and an Opus tone) and decode the box's video, reading its stamps.

``Official(ws, vp8_only=True)`` plays a browser without H.264: it publishes stamped frames
that aiortc encodes as VP8, and its downstream offers to receive VP8 only."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

import aiohttp
import av
from aiortc import (
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription

from contracts import signaling as sig
from edge.media.sources import SyntheticAudio
from edge.media.tracks import SourceTrack
from runtime.rtc import rtc_configuration
from tests.media.peers import (
    FPS,
    DecodingSubscriber,
    StampedPublisher,
    stamped_frame,
    video_codecs,
)

F = TypeVar("F")
WAIT = 15.0


def negotiated(sdp: str, kind: str = "video") -> list[str]:
    """The codecs (MIME types, RTX left out) of the ``kind`` m-line of an SDP answer."""
    (media,) = [m for m in SessionDescription.parse(sdp).media if m.kind == kind]
    return [c.mimeType for c in media.rtp.codecs if c.mimeType != f"{kind}/rtx"]


class StampedFrames(MediaStreamTrack):
    """Stamped 320x240 frames at 15 fps as raw frames: aiortc encodes them (here: VP8)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self.sent / FPS - time.monotonic()))
        frame = stamped_frame(self.sent)
        self.sent += 1
        return frame


class Vp8Publisher:
    """The upstream of a browser without H.264: stamped frames, encoded as VP8 by aiortc."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(rtc_configuration())
        self.track = StampedFrames()
        transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        transceiver.setCodecPreferences(video_codecs("video/VP8"))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def start(self) -> None:
        """Nothing to start: aiortc pulls frames once connected."""

    async def close(self) -> None:
        self.track.stop()
        await self.pc.close()


class Official:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, vp8_only: bool = False) -> None:
        self.ws = ws
        self.vp8_only = vp8_only
        self.frames: list[sig.Frame] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.publisher: StampedPublisher | Vp8Publisher = (
            Vp8Publisher() if vp8_only else StampedPublisher()
        )
        self.audio = SourceTrack(SyntheticAudio())
        self.publisher.pc.addTransceiver(self.audio, direction="sendonly")
        self.subscriber = DecodingSubscriber()

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.frames.append(sig.parse_frame(msg.data))
                self._arrived.set()

    async def send(self, frame: sig.Frame) -> None:
        await self.ws.send_str(frame.dump())

    async def until(self, kind: type[F], check: Callable[[F], bool] = lambda f: True) -> F:
        """The first frame (seen so far or to come) of ``kind`` passing ``check``."""
        async with asyncio.timeout(WAIT):
            while True:
                for frame in self.frames:
                    if isinstance(frame, kind) and check(frame):
                        return frame
                self._arrived.clear()
                await self._arrived.wait()

    async def start_media(self, session_id: str, box: str) -> None:
        """Publish and subscribe to ``box`` through the relay (answers come by signaling)."""
        await self.send(
            sig.Offer(session_id=session_id, direction="publish", sdp=await self.publisher.offer())
        )
        sub_pc = self.subscriber.pc
        sub_pc.addTransceiver("audio", direction="recvonly")
        if self.vp8_only:
            video = sub_pc.addTransceiver("video", direction="recvonly")
            video.setCodecPreferences(video_codecs("video/VP8"))
            await sub_pc.setLocalDescription(await sub_pc.createOffer())
            offer = str(sub_pc.localDescription.sdp)
        else:
            offer = await self.subscriber.make_offer()
        await self.send(
            sig.Offer(session_id=session_id, direction="subscribe", sdp=offer, source=box)
        )
        answer = await self.until(sig.Answer, lambda a: a.direction == "publish")
        await self.publisher.answer(answer.sdp)
        self.publisher.start()
        answer = await self.until(sig.Answer, lambda a: a.direction == "subscribe")
        await sub_pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))

    async def close(self) -> None:
        await self.publisher.close()
        await self.subscriber.close()
        self.audio.stop()
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
