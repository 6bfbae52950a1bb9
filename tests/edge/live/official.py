"""An official for the box's call tests: a real signaling socket and real aiortc peers that
publish stamped H.264 (and an Opus tone) and decode the box's video, reading its stamps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

import aiohttp
from aiortc import RTCSessionDescription

from contracts import signaling as sig
from edge.media.sources import SyntheticAudio
from edge.media.tracks import SourceTrack
from tests.media.peers import DecodingSubscriber, StampedPublisher

F = TypeVar("F")
WAIT = 15.0


class Official:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[sig.Frame] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.publisher = StampedPublisher()
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
