"""One live call of the box, through the hub relay: two peer connections ("legs").

- **publish**: the camera as pre-encoded video (``EncodedVideoTrack``) and the microphone as
  Opus (aiortc encodes the raw frames). The video codec is the session's (``video_codec`` of
  ``session_started``: one the official decodes, since the relay forwards it as it is): H.264
  by default, encoded once for the relay and the recording alike; VP8 for an official whose
  browser lacks H.264, in which case the recording, which holds H.264 only (MPEG-TS takes no
  VP8), gets the camera's raw frames and encodes them itself. The relay's keyframe requests
  (PLI/FIR) reach the encoder and its congestion estimate (REMB) sets the encoder's bitrate
  (``EncodedVideoTrack.attach``).
- **subscribe**: the official's video and audio. Audio frames are recorded and handed to
  ``remote_audio_sinks`` (the kiosk's speaker, ``edge.kiosk.speaker``). Video frames are
  decoded (counted, shown on the kiosk) and, when they are H.264, their encoded frames are
  taken before the decoder (``runtime.rtc.EncodedTap``) and recorded as they are; otherwise
  decoded frames are recorded (the recorder encodes them).

Each leg is offered by the box (``offer`` frame, non-trickle: aiortc gathers every candidate
first) and answered by the relay. A leg whose answer does not come within ``answer_timeout``,
or whose connection fails, is offered again on a new peer connection; so is every unanswered
leg when the signaling socket comes back (``resend``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from contracts import signaling as sig
from edge.live.errors import LiveError, UnsupportedCodec
from edge.media.config import MediaConfig
from edge.media.encoder import Codec, VideoEncoder
from edge.media.recorder import Recorder
from edge.media.sources import AudioSource, VideoSource, open_audio, open_video
from edge.media.tracks import EncodedVideoTrack, FrameSink, SourceTrack
from runtime.rtc import EncodedFrame, EncodedTap, rtc_configuration

log = logging.getLogger(__name__)

Send = Callable[[sig.Frame], Awaitable[None]]
CHECK_SECONDS = 0.25
"""How often the supervisor looks at unanswered offers and failed connections."""
ENCODER_CODECS: dict[sig.VideoCodec, Codec] = {"H264": "h264", "VP8": "vp8"}
"""The session's video codec (as signaling names it) as ``VideoEncoder`` names it."""


def encoder_for(media: MediaConfig, video_codec: sig.VideoCodec) -> VideoEncoder:
    """A new encoder of ``video_codec``: VP8 (libvpx), or H.264 as ``media.encoder`` says
    (``auto`` when that names VP8: the official may not decode it)."""
    if video_codec == "VP8":
        return VideoEncoder.from_config(media, "vp8")
    return VideoEncoder.from_config(media, "auto" if media.encoder == "vp8" else None)


@dataclass(frozen=True)
class CallStats:
    """What the kiosk state and the metrics show about a call."""

    publish: str
    """connection state of the upstream leg"""
    video_codec: str
    """what the box publishes: ``H264`` or ``VP8``"""
    subscribe: str
    local_frames: int
    """camera frames taken (each encoded once)"""
    remote_frames: int
    """the official's video frames decoded"""
    remote_audio_frames: int
    keyframe_requests: int
    bitrate: int
    """the encoder's current target, bits/s"""
    bitrate_estimate: int | None
    """the relay's last congestion estimate (REMB), bits/s"""
    offers: int
    recorded: dict[str, int]


class _Leg:
    def __init__(self, direction: sig.Direction, pc: RTCPeerConnection) -> None:
        self.direction = direction
        self.pc = pc
        self.offer: str | None = None
        self.offered_at: float | None = None
        self.answered = False
        self.sent = False


class BoxCall:
    """The media of one session. ``start`` opens the camera and microphone and offers both
    legs; ``on_answer`` takes the relay's answers; ``close`` (safe twice) ends everything.
    ``video_codec`` is the session's (``SessionStarted.video_codec``); an ``encoder`` given
    must encode it."""

    def __init__(
        self,
        session_id: str,
        official: str | None,
        media: MediaConfig,
        send: Send,
        *,
        recorder: Recorder | None = None,
        answer_timeout: float = 8.0,
        video_source: VideoSource | None = None,
        audio_source: AudioSource | None = None,
        encoder: VideoEncoder | None = None,
        video_codec: sig.VideoCodec = "H264",
    ) -> None:
        if encoder is not None and encoder.codec != ENCODER_CODECS[video_codec]:
            raise UnsupportedCodec(
                f"session {session_id} publishes {video_codec}, but the encoder given is "
                f"{encoder.name!r} ({encoder.codec})"
            )
        self.session_id = session_id
        self.video_codec = video_codec
        self.official = official
        self.media = media
        self.send = send
        self.recorder = recorder
        self.answer_timeout = answer_timeout
        self._video_source = video_source
        self._audio_source = audio_source
        self._encoder = encoder
        self.video: EncodedVideoTrack | None = None
        self.audio: SourceTrack | None = None
        self.remote_frame_sinks: list[FrameSink] = []
        """Called with every decoded ``av.VideoFrame`` of the official."""
        self.remote_audio_sinks: list[Callable[[av.AudioFrame], None]] = []
        """Called with every decoded ``av.AudioFrame`` of the official (the kiosk's speaker);
        a sink that raises is logged and the others still get the frame."""
        self.last_local: av.VideoFrame | None = None
        self.last_remote: av.VideoFrame | None = None
        self.remote_frames = 0
        self.remote_audio_frames = 0
        self.remote_first_frame = asyncio.Event()
        self.offers = 0
        self._remote_encoded = False
        self._legs: dict[sig.Direction, _Leg] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return f"call {self.session_id}"

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the sources and the encoder, and offer both legs."""
        media = self.media
        video = self._video_source or open_video(media)
        audio = self._audio_source or open_audio(media)
        self._video_source, self._audio_source = video, audio
        if self._encoder is None:
            self._encoder = await asyncio.to_thread(encoder_for, media, self.video_codec)
        self.video = EncodedVideoTrack(video, self._encoder)
        self.video.frame_sinks.append(self._on_local_frame)
        self.audio = SourceTrack(audio)
        if self.recorder is not None:
            if self.video.codec == "h264":  # recorded as sent: encoded once
                self.video.sinks.append(self.recorder.write_local_video)
                self.recorder.request_keyframe = self.video.request_keyframe
            else:  # the recording encodes the camera's frames to H.264 itself
                self.video.frame_sinks.append(self.recorder.write_local_video)
            self.audio.frame_sinks.append(self.recorder.write_local_audio)
        await self._offer("publish")
        await self._offer("subscribe")
        self._supervisor = asyncio.create_task(self._supervise(), name=f"{self.name} supervisor")

    async def close(self) -> None:
        """Close both legs, the tracks and the sources; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in [self._supervisor, *self._tasks] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        legs, self._legs = list(self._legs.values()), {}
        await asyncio.gather(*(leg.pc.close() for leg in legs), return_exceptions=True)
        for track in (self.video, self.audio):
            if track is not None:
                track.stop()
        for source in (self._video_source, self._audio_source):
            if source is not None:
                with contextlib.suppress(Exception):
                    await source.close()
        if self._encoder is not None:
            self._encoder.close()
        log.info(
            "%s closed: %d %s frames sent, %d of the official's decoded",
            self.name,
            self.video.frames if self.video else 0,
            self.video_codec,
            self.remote_frames,
        )

    # -- negotiation ----------------------------------------------------------------------------

    async def on_answer(self, frame: sig.Answer) -> None:
        """The relay's answer to one of this call's offers."""
        leg = self._legs.get(frame.direction)
        if leg is None or leg.answered or leg.pc.signalingState != "have-local-offer":
            log.info("%s: ignoring a %s answer nobody waits for", self.name, frame.direction)
            return
        try:
            await leg.pc.setRemoteDescription(RTCSessionDescription(sdp=frame.sdp, type="answer"))
        except Exception as exc:
            log.warning("%s: the relay's %s answer failed: %r", self.name, frame.direction, exc)
            await self._offer(frame.direction)
            return
        leg.answered = True
        log.info("%s: %s answered", self.name, frame.direction)

    async def resend(self) -> None:
        """The signaling socket is back: send again every offer not answered yet, and offer
        anew the legs whose connection failed meanwhile."""
        for direction, leg in list(self._legs.items()):
            if leg.pc.connectionState in ("failed", "closed"):
                await self._offer(direction)
            elif not leg.answered and leg.offer is not None:
                await self._send_offer(leg)

    async def _offer(self, direction: sig.Direction) -> None:
        old = self._legs.pop(direction, None)
        if old is not None:
            await old.pc.close()
        if self._closed:
            return
        pc = RTCPeerConnection(rtc_configuration())
        leg = _Leg(direction, pc)
        self._legs[direction] = leg
        if direction == "publish":
            self._add_publish_tracks(pc)
        else:
            self._add_subscribe_transceivers(pc)
        pc.on("connectionstatechange", lambda: self._on_state(leg))
        await pc.setLocalDescription(await pc.createOffer())
        leg.offer = str(pc.localDescription.sdp)
        self.offers += 1
        await self._send_offer(leg)

    async def _send_offer(self, leg: _Leg) -> None:
        assert leg.offer is not None
        leg.offered_at = time.monotonic()
        frame = sig.Offer(
            session_id=self.session_id,
            direction=leg.direction,
            sdp=leg.offer,
            source=self.official if leg.direction == "subscribe" else None,
        )
        try:
            await self.send(frame)
            leg.sent = True
        except LiveError as exc:
            leg.sent = False
            log.info(
                "%s: %s offer not sent (%s); sent again on reconnect", self.name, leg.direction, exc
            )

    def _add_publish_tracks(self, pc: RTCPeerConnection) -> None:
        assert self.video is not None and self.audio is not None
        video = pc.addTransceiver(self.video, direction="sendonly")
        codecs = RTCRtpSender.getCapabilities("video").codecs
        wanted = "video/H264" if self.video.codec == "h264" else "video/VP8"
        video.setCodecPreferences(
            [c for c in codecs if c.mimeType == wanted]
            + [c for c in codecs if c.mimeType == "video/rtx"]
        )
        self.video.attach(video.sender)
        pc.addTransceiver(self.audio, direction="sendonly")

    def _add_subscribe_transceivers(self, pc: RTCPeerConnection) -> None:
        video = pc.addTransceiver("video", direction="recvonly")
        EncodedTap(video.receiver, self._on_remote_encoded, decode=True)
        pc.addTransceiver("audio", direction="recvonly")
        pc.on("track", self._on_track)

    def _on_state(self, leg: _Leg) -> None:
        log.info("%s: %s leg is %s", self.name, leg.direction, leg.pc.connectionState)

    async def _supervise(self) -> None:
        """Offer again when an answer is overdue or a connection failed."""
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            for direction, leg in list(self._legs.items()):
                state = leg.pc.connectionState
                overdue = (
                    not leg.answered
                    and leg.sent
                    and leg.offered_at is not None
                    and time.monotonic() - leg.offered_at > self.answer_timeout
                )
                if overdue or state == "failed":
                    log.warning(
                        "%s: %s leg %s; offering again",
                        self.name,
                        direction,
                        "failed" if state == "failed" else "got no answer",
                    )
                    try:
                        await self._offer(direction)
                    except Exception:
                        log.exception("%s: offering %s again failed", self.name, direction)

    # -- media ----------------------------------------------------------------------------------

    def _on_local_frame(self, frame: Any) -> None:
        self.last_local = frame

    def _on_remote_encoded(self, frame: EncodedFrame) -> None:
        if frame.codec.lower() != "h264" or self.recorder is None:
            return
        self._remote_encoded = True
        self.recorder.write_remote_video(frame.to_packet())

    def _on_track(self, track: MediaStreamTrack) -> None:
        reader = self._read_video(track) if track.kind == "video" else self._read_audio(track)
        task = asyncio.create_task(reader, name=f"{self.name} remote {track.kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.VideoFrame):
                    continue
                self.remote_frames += 1
                self.last_remote = frame
                self.remote_first_frame.set()
                if self.recorder is not None and not self._remote_encoded:
                    self.recorder.write_remote_video(frame)
                for sink in self.remote_frame_sinks:
                    try:
                        sink(frame)
                    except Exception:
                        log.exception("%s: a remote frame sink failed", self.name)

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                self.remote_audio_frames += 1
                if self.recorder is not None:
                    self.recorder.write_remote_audio(frame)
                for sink in self.remote_audio_sinks:
                    try:
                        sink(frame)
                    except Exception:
                        log.exception("%s: a remote audio sink failed", self.name)

    def stats(self) -> CallStats:
        def state(direction: sig.Direction) -> str:
            leg = self._legs.get(direction)
            return "closed" if leg is None else str(leg.pc.connectionState)

        video = self.video
        return CallStats(
            publish=state("publish"),
            video_codec=self.video_codec,
            subscribe=state("subscribe"),
            local_frames=video.frames if video else 0,
            remote_frames=self.remote_frames,
            remote_audio_frames=self.remote_audio_frames,
            keyframe_requests=video.keyframe_requests if video else 0,
            bitrate=video.encoder.bitrate if video else 0,
            bitrate_estimate=video.bitrate_estimate if video else None,
            offers=self.offers,
            recorded={str(k): n for k, n in self.recorder.written.items()} if self.recorder else {},
        )
