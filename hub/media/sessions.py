"""What the relay holds: sessions of publishers (their upstreams and the feeds those fill) and
subscriptions (the routes from feeds, as they are or transcoded, to one subscriber's tracks),
and the statistics it reports of them. ``hub.media.relay.Relay`` negotiates and wires them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from hub.media.keyframes import KeyframeRequester, KeyframeStats
from hub.media.transcode import RateMeter, TranscodedFeed, TranscodeStats
from runtime.rtc import EncodedFrame, EncodedTap, EncodedTrack, KeyframeReason, Kind

KINDS: tuple[Kind, ...] = ("video", "audio")
REBASE_STEP_SECONDS = 0.02
"""RTP-time gap put between the last frame of an old upstream and the first of its successor."""


@dataclass(frozen=True)
class FeedStats:
    session_id: str
    participant_id: str
    kind: Kind
    codec: str
    connected: bool
    frames: int
    keyframes: int
    bytes: int
    subscribers: int
    keyframe_requests: KeyframeStats | None


@dataclass(frozen=True)
class SubscriptionStats:
    session_id: str
    subscriber_id: str
    source: str
    hidden: bool
    connection: str
    sent: int
    """packets handed to the subscriber's senders"""
    dropped: int
    overflows: int
    queued: int
    video_codec: str | None = None
    """what the subscriber receives (``video/VP8``, ``video/H264``), ``None`` without video"""
    transcoded: bool = False
    """whether its video comes from a transcoded feed (its codec is not the publisher's)"""


@dataclass(frozen=True)
class RelayStats:
    sessions: int
    publishers: int
    subscriptions: int
    hidden_subscriptions: int
    feeds: tuple[FeedStats, ...]
    subscription_details: tuple[SubscriptionStats, ...]
    transcoded_feeds: tuple[TranscodeStats, ...] = ()


def name_of(session_id: str, participant_id: str) -> str:
    return f"{session_id}/{participant_id}"


class Feed:
    """One upstream track of a participant (video or audio) and the tracks it feeds. Outlives
    the upstream's peer connection when the participant publishes again."""

    def __init__(
        self, session_id: str, participant_id: str, kind: Kind, codec: RTCRtpCodecCapability
    ) -> None:
        self.session_id = session_id
        self.participant_id = participant_id
        self.kind = kind
        self.codec = codec
        self.tracks: set[EncodedTrack] = set()
        self.transcoders: dict[str, TranscodedFeed] = {}
        """by target codec name (``VP8``, ``H264``)"""
        self.meter = RateMeter()
        self.keyframes: KeyframeRequester | None = None
        self.keyframe_task: asyncio.Task[None] | None = None
        self.tap: EncodedTap | None = None
        self.frames = 0
        self.keyframes_in = 0
        self.bytes = 0
        self._offset = 0
        self._last_timestamp: int | None = None
        self._rebase = False

    @property
    def name(self) -> str:
        return f"{name_of(self.session_id, self.participant_id)}/{self.kind}"

    def connect(self, tap: EncodedTap) -> None:
        """Take frames from a (new) upstream receiver."""
        self.tap = tap
        if self._last_timestamp is not None:
            self._rebase = True
            for track in self.tracks:
                track.skip_to_keyframe()
            for transcoder in self.transcoders.values():
                transcoder.skip_to_keyframe()

    def on_frame(self, frame: EncodedFrame) -> None:
        if self._rebase:
            step = int(frame.clock_rate * REBASE_STEP_SECONDS)
            assert self._last_timestamp is not None
            self._offset = self._last_timestamp + step - frame.timestamp
            self._rebase = False
        timestamp = frame.timestamp + self._offset
        self._last_timestamp = timestamp
        self.frames += 1
        self.bytes += len(frame.data)
        if frame.keyframe and self.kind == "video":
            self.keyframes_in += 1
            if self.keyframes is not None:
                self.keyframes.keyframe_arrived()
        if self.kind == "video":
            self.meter.add(len(frame.data), frame.received)
            for transcoder in self.transcoders.values():
                transcoder.put(frame, timestamp)
        if not self.tracks:
            return
        packet = frame.to_packet()
        packet.pts = timestamp
        for track in self.tracks:
            track.put(packet)

    def on_keyframe_request(self, reason: KeyframeReason) -> None:
        if self.keyframes is not None:
            self.keyframes.want()

    def want_keyframe(self) -> None:
        self.on_keyframe_request("remote")

    async def request_keyframe(self) -> bool:
        return self.tap is not None and await self.tap.request_keyframe()


class Upstream:
    """Routes one tapped receiver's frames to the feed chosen once negotiation is done."""

    def __init__(self, kind: Kind, codec: RTCRtpCodecCapability) -> None:
        self.kind = kind
        self.codec = codec
        self.tap: EncodedTap | None = None
        self.feed: Feed | None = None

    def on_frame(self, frame: EncodedFrame) -> None:
        if self.feed is not None and self.feed.tap is self.tap:
            self.feed.on_frame(frame)


class Publisher:
    def __init__(self, session_id: str, participant_id: str, pc: RTCPeerConnection) -> None:
        self.session_id = session_id
        self.participant_id = participant_id
        self.pc = pc


class Route:
    """One track of a subscription: fed by ``feed`` as it is, or, with ``target``, by the
    feed's transcoder to that codec (bound when the subscription is committed)."""

    def __init__(self, feed: Feed, target: RTCRtpCodecCapability | None) -> None:
        self.feed = feed
        self.target = target
        self.track: EncodedTrack | None = None
        self.transcoder: TranscodedFeed | None = None

    @property
    def codec(self) -> RTCRtpCodecCapability:
        return self.target or self.feed.codec

    def on_keyframe_request(self, reason: KeyframeReason) -> None:
        if self.transcoder is not None:
            self.transcoder.on_keyframe_request(reason)
        else:
            self.feed.on_keyframe_request(reason)


class Subscription:
    def __init__(
        self,
        session_id: str,
        subscriber_id: str,
        source: str,
        hidden: bool,
        pc: RTCPeerConnection,
    ) -> None:
        self.session_id = session_id
        self.subscriber_id = subscriber_id
        self.source = source
        self.hidden = hidden
        self.pc = pc
        self.routes: list[Route] = []
        self.awaiting_answer = False

    def detach(self) -> list[tuple[Feed, TranscodedFeed]]:
        """Stop every track; returns the transcoders this left without subscribers."""
        emptied: list[tuple[Feed, TranscodedFeed]] = []
        for route in self.routes:
            assert route.track is not None
            if route.transcoder is not None:
                if route.transcoder.remove(route.track):
                    emptied.append((route.feed, route.transcoder))
            else:
                route.feed.tracks.discard(route.track)
                route.track.stop()
        return emptied


class Session:
    def __init__(self) -> None:
        self.publishers: dict[str, Publisher] = {}
        self.feeds: dict[tuple[str, Kind], Feed] = {}
        self.subscriptions: dict[tuple[str, str], Subscription] = {}

    def empty(self) -> bool:
        return not (self.publishers or self.feeds or self.subscriptions)
