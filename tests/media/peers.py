"""Real aiortc peers for the media tests: a publisher that encodes stamped frames with libx264
and sends them pre-encoded (as the box will), and subscribers that decode and read the stamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from runtime.rtc import EncodedTrack, KeyframeReason, rtc_configuration
from tests.support import stamped

if TYPE_CHECKING:
    from hub.media import Relay

WIDTH, HEIGHT, FPS = 320, 240, 15


def stamped_frame(frame_no: int) -> av.VideoFrame:
    """A 320x240 stamped picture (``tests.support.stamped``)."""
    return stamped.stamped_frame(frame_no, WIDTH, HEIGHT, FPS)


def read_stamp(frame: object) -> int | None:
    """The frame number stamped in a decoded picture."""
    stamp = stamped.read_stamp(frame)
    return None if stamp is None else stamp[0]


def X264() -> stamped.X264:
    """The shared test encoder at this module's size and 300 kbps."""
    return stamped.X264(WIDTH, HEIGHT, FPS, bitrate=300_000)


def VP8() -> stamped.VP8:
    """The shared VP8 test encoder at this module's size and 300 kbps."""
    return stamped.VP8(WIDTH, HEIGHT, FPS, bitrate=300_000)


def video_codecs(*mime_types: str) -> list[RTCRtpCodecCapability]:
    """aiortc's video codecs of these types (``video/VP8``, ``video/H264``), for
    ``setCodecPreferences``."""
    wanted = {m.lower() for m in mime_types}
    return [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in wanted]


class StampedPublisher:
    """Sends stamped H.264 (or ``codec="VP8"``) frames at 15 fps through an
    :class:`EncodedTrack`; keyframes only when a request reaches it (``keyframe_requests`` holds
    their monotonic times)."""

    def __init__(self, codec: str = "H264") -> None:
        self.pc = RTCPeerConnection(rtc_configuration())
        self.track = EncodedTrack("video", max_queue=30, on_keyframe_request=self._on_request)
        transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        transceiver.setCodecPreferences(video_codecs(f"video/{codec}"))
        self.track.attach(transceiver.sender)
        self.keyframe_requests: list[tuple[float, KeyframeReason]] = []
        self.keyframes_sent: list[int] = []
        self.sent = -1
        self._encoder: stamped.X264 | VP8 = VP8() if codec == "VP8" else X264()
        self._force_keyframe = True
        self._task: asyncio.Task[None] | None = None
        self.events: list[str] = []
        self.pc.on("signalingstatechange", lambda: self.events.append(self.pc.signalingState))
        self.pc.on("track", lambda track: self.events.append(f"track {track.kind}"))

    def _on_request(self, reason: KeyframeReason) -> None:
        self.keyframe_requests.append((time.monotonic(), reason))
        self._force_keyframe = True

    def remote_requests(self) -> list[float]:
        return [t for t, reason in self.keyframe_requests if reason == "remote"]

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop_sending(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def close(self) -> None:
        await self.stop_sending()
        await self.pc.close()

    async def _run(self) -> None:
        start = time.monotonic()
        frame_no = 0
        while True:
            keyframe, self._force_keyframe = self._force_keyframe, False
            for packet in self._encoder.encode(stamped_frame(frame_no), keyframe):
                if packet.is_keyframe:
                    self.keyframes_sent.append(frame_no)
                self.track.put(packet)
            self.sent = frame_no
            frame_no += 1
            await asyncio.sleep(max(0.0, start + frame_no / FPS - time.monotonic()))


def opus_packets() -> Iterator[av.Packet[Any]]:
    """20 ms Opus packets of a 48 kHz stereo tone, pts in 1/48000."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "stereo", "s16"
    encoder.time_base = fractions.Fraction(1, 48000)
    tone = np.repeat((np.sin(np.arange(960) / 10) * 8000).astype(np.int16), 2).reshape(1, -1)
    pts = 0
    while True:
        frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, pts, encoder.time_base
        pts += 960
        for packet in encoder.encode(frame):
            packet.time_base = encoder.time_base
            yield packet


class DecodingSubscriber:
    """Receives one video track, decodes it (aiortc's decoder) and records the stamps."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(rtc_configuration())
        self.stamps: list[int] = []
        self.arrivals: list[float] = []
        self.unreadable = 0
        self.connected_at: float | None = None
        self.first_frame = asyncio.Event()
        self.audio_samples = 0
        self.events: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self.pc.on("signalingstatechange", lambda: self.events.append(self.pc.signalingState))

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.events.append(f"track {track.kind}")
        reader = self._read(track) if track.kind == "video" else self._listen(track)
        self._tasks.append(asyncio.create_task(reader))

    async def _listen(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                self.audio_samples += frame.samples

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                stamp = read_stamp(frame)
                if stamp is None:
                    self.unreadable += 1
                    continue
                self.stamps.append(stamp)
                self.arrivals.append(time.monotonic())
                self.first_frame.set()

    async def answer_offer(self, sdp: str) -> str:
        """Answer an offer the relay made."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def make_offer(self) -> str:
        """Offer to receive video (and audio) from the relay."""
        self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def make_offer_for(self, *mime_types: str) -> str:
        """Offer to receive video in these codecs only (a browser that decodes only VP8)."""
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        transceiver.setCodecPreferences(video_codecs(*mime_types))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def take_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def wait_for(
    condition: Callable[[], bool], seconds: float, what: str, step: float = 0.01
) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(step)


async def closing(*closers: Callable[[], Awaitable[None]]) -> None:
    await asyncio.gather(*(c() for c in closers), return_exceptions=True)


async def publish_stamped(
    relay: Relay, session: str, box: str, codec: str = "H264"
) -> StampedPublisher:
    """A ``StampedPublisher`` publishing ``box``'s stream of ``session`` to ``relay``, started."""
    publisher = StampedPublisher(codec)
    await publisher.answer(await relay.publish(session, box, await publisher.offer()))
    publisher.start()
    return publisher
