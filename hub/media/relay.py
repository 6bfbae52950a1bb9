"""The hub's pass-through relay (SFU).

Every participant sends one upstream (video, and Opus audio when it has a microphone) on its
own peer connection (:meth:`Relay.publish`); every subscriber gets one peer connection per
participant it watches (:meth:`Relay.subscribe`). Frames are taken encoded from the upstream
receiver's jitter buffer (:class:`runtime.rtc.EncodedTap`) and handed to one
:class:`runtime.rtc.EncodedTrack` per subscriber, which aiortc's sender packetizes as they are:
for every subscriber that can take the publisher's codec, the relay decodes and encodes nothing.
An H.264 frame is cut into RTP payloads once for all its watchers
(:func:`runtime.rtc.share_packetization`), and aiortc reads the clock it stamps every packet with
cheaply (:func:`runtime.rtc.install_fast_clock`).

The one exception is a subscriber whose offer receives video but not in the publisher's codec
(a browser without H.264 watching an H.264 box): when it takes VP8 (or H.264, for a VP8 feed) it
is served by a transcoded feed (:mod:`hub.media.transcode`), one per source feed and target
codec, shared by all such subscribers, started by the first and closed with the last or with its
source. It costs the hub about 0.2 core per transcoded 640x480 15 fps feed (not per watcher)
and its watchers 12-16 ms (docs/live.md); the box still sends one stream. An offer that can take
neither the publisher's codec nor a codec the relay transcodes to gets :class:`CodecMismatch`;
audio (Opus) is never transcoded; when the relay makes the offer (:meth:`Relay.subscribe`
without one) the subscription is always pass-through. :meth:`Relay.stats` says which
subscriptions are transcoded (``SubscriptionStats.transcoded``) and how each transcoded feed is
doing (``transcoded_feeds``).

Keyframes: a subscriber's track drops everything until a keyframe and asks for one when its
sender starts; subscribers' requests (start, overflow, PLI/FIR) are merged into at most one PLI
a second per publisher, retried once (:mod:`hub.media.keyframes`). A slow subscriber's queue is
bounded and cut back to the next keyframe.

Hidden subscribers (monitors) are subscribers like any other, on their own peer connections:
the publisher's connection and the other subscribers' connections never change when one comes
or goes. The only trace they leave upstream is a keyframe request, which is throttled and
indistinguishable from a visible viewer's picture-loss request. :meth:`Relay.participants`
leaves them out.

A participant that publishes again (a reconnect within signaling's grace period) keeps its
subscribers: their tracks move to the new upstream, skip to its first keyframe, and continue
with RTP timestamps that do not jump back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import CODECS, get_capabilities, is_rtx
from aiortc.rtcpeerconnection import filter_preferred_codecs, find_common_codecs
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.sdp import MediaDescription, SessionDescription

from hub.media.config import RelayConfig
from hub.media.errors import (
    BadOffer,
    CodecMismatch,
    NotPublishing,
    RelayClosed,
    RelayError,
    UnknownSubscription,
)
from hub.media.keyframes import KeyframeRequester
from hub.media.sessions import (
    KINDS,
    Feed,
    FeedStats,
    Publisher,
    RelayStats,
    Route,
    Session,
    Subscription,
    SubscriptionStats,
    Upstream,
    name_of,
)
from hub.media.transcode import TARGETS, TranscodedFeed, TranscodeStats
from runtime.rtc import (
    EncodedTap,
    EncodedTrack,
    Kind,
    check_internals,
    install_fast_clock,
    rtc_configuration,
    share_packetization,
)

logger = logging.getLogger(__name__)


def _parse(sdp: str, what: str) -> SessionDescription:
    try:
        return SessionDescription.parse(sdp)
    except Exception as exc:
        raise BadOffer(f"{what} is not SDP the relay can read: {exc!r}") from exc


def _capability(kind: str, codec: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    for capability in get_capabilities(kind).codecs:
        if (
            capability.mimeType.lower() == codec.mimeType.lower()
            and capability.parameters == codec.parameters
        ):
            return capability
    raise CodecMismatch(f"codec {codec.mimeType} {codec.parameters} is not one aiortc offers")


def _rtx_capability() -> RTCRtpCodecCapability:
    return next(c for c in get_capabilities("video").codecs if c.mimeType.lower() == "video/rtx")


def _preferences(kind: Kind, codec: RTCRtpCodecCapability) -> list[RTCRtpCodecCapability]:
    return [codec, _rtx_capability()] if kind == "video" else [codec]


def _target(feed: Feed, media: MediaDescription, name: str) -> RTCRtpCodecCapability | None:
    """What a subscribe offer's m-line gets of ``feed``: ``None`` for the feed as it is, else
    the codec to transcode its video to (:data:`hub.media.transcode.TARGETS`, in the offer's
    order of preference); :class:`CodecMismatch` when it can take neither."""
    common = [c for c in find_common_codecs(CODECS[feed.kind], media.rtp.codecs) if not is_rtx(c)]
    if filter_preferred_codecs(common, [feed.codec]):
        return None
    source = feed.codec.name.upper()
    targets = [t for t in TARGETS if t != source] if feed.kind == "video" else []
    chosen = next((c for c in common if c.name.upper() in targets), None)
    if chosen is not None:
        return _capability(feed.kind, chosen)
    offered = sorted({c.mimeType for c in media.rtp.codecs if not is_rtx(c)})
    raise CodecMismatch(
        f"subscriber {name} receives {feed.kind} as {offered}: not the publisher's "
        f"{feed.codec.mimeType}"
        + (f", nor {' or '.join(targets)}, which the relay transcodes to" if targets else "")
        + (" (audio is never transcoded)" if feed.kind == "audio" else "")
    )


class Relay:
    """The SFU: sessions of publishers and subscribers. Start it (or ``async with``) before use;
    :meth:`stop` closes every peer connection and is safe to call twice."""

    def __init__(self, config: RelayConfig | None = None) -> None:
        self.config = config or RelayConfig()
        self._sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._state = "new"

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._state != "new":
            raise RelayClosed(f'cannot start a relay in state "{self._state}"')
        check_internals()
        install_fast_clock()
        self._state = "running"
        logger.info("media relay started")

    async def stop(self) -> None:
        if self._state != "running":
            self._state = "stopped"
            return
        self._state = "stopping"
        for session_id in list(self._sessions):
            session = self._sessions.pop(session_id)
            await self._close_session(session)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._state = "stopped"
        logger.info("media relay stopped")

    # --- API for signaling ---------------------------------------------------------------

    async def publish(self, session_id: str, participant_id: str, offer_sdp: str) -> str:
        """Take a participant's upstream: ``offer_sdp`` sends video and/or audio (at most one
        of each); returns the answer. Publishing again replaces the old upstream and keeps the
        subscribers."""
        self._check_running()
        name = name_of(session_id, participant_id)
        offer = _parse(offer_sdp, f"the publish offer of {name}")
        plan = self._publish_plan(offer, name)
        pc = RTCPeerConnection(rtc_configuration())
        upstreams: list[Upstream] = []
        try:
            for kind, codec in plan:
                if codec is None:
                    pc.addTransceiver(kind, direction="inactive")
                    continue
                transceiver = pc.addTransceiver(kind, direction="recvonly")
                transceiver.setCodecPreferences(_preferences(kind, codec))
                upstream = Upstream(kind, codec)
                # tap before any media can arrive; frames reach a feed once it is chosen
                upstream.tap = EncodedTap(transceiver.receiver, upstream.on_frame)
                upstreams.append(upstream)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            self._check_running()
        except BaseException as exc:
            await pc.close()
            if isinstance(exc, Exception) and not isinstance(exc, RelayError):
                raise BadOffer(f"the publish offer of {name} failed: {exc!r}") from exc
            raise
        session = self._sessions.setdefault(session_id, Session())
        old = session.publishers.pop(participant_id, None)
        if old is not None:
            await old.pc.close()
        codecs = {u.kind: u.codec for u in upstreams}
        for kind in KINDS:
            feed = session.feeds.get((participant_id, kind))
            if feed is not None and feed.codec != codecs.get(kind):
                await self._close_feed(session, feed)  # its subscribers must subscribe again
        for upstream in upstreams:
            kind = upstream.kind
            feed = session.feeds.get((participant_id, kind))
            if feed is None:
                feed = Feed(session_id, participant_id, kind, upstream.codec)
                session.feeds[(participant_id, kind)] = feed
                if kind == "video":
                    feed.keyframes = KeyframeRequester(
                        feed.request_keyframe,
                        interval=self.config.keyframe_interval,
                        retry=self.config.keyframe_retry,
                        name=feed.name,
                    )
                    feed.keyframe_task = self._spawn(feed.keyframes.run(), f"keyframes {feed.name}")
            assert upstream.tap is not None
            feed.connect(upstream.tap)
            upstream.feed = feed
        publisher = Publisher(session_id, participant_id, pc)
        session.publishers[participant_id] = publisher
        pc.on("connectionstatechange", lambda: self._publisher_state(publisher))
        logger.info(
            "%s publishes %s",
            name,
            ", ".join(f"{u.kind} {u.codec.mimeType}" for u in upstreams),
        )
        return str(pc.localDescription.sdp)

    async def subscribe(
        self,
        session_id: str,
        subscriber_id: str,
        source: str,
        offer_sdp: str | None = None,
        *,
        hidden: bool = False,
    ) -> str:
        """Send ``source``'s upstream to ``subscriber_id`` on a new peer connection. With the
        subscriber's ``offer_sdp``, returns the answer; without, returns the relay's offer, to
        be answered through :meth:`accept_answer`. ``hidden`` (monitors) keeps the subscriber
        out of :meth:`participants`; nothing else differs. Subscribing again replaces the old
        connection."""
        self._check_running()
        session = self._sessions.get(session_id)
        feeds = [
            feed
            for kind in KINDS
            if session is not None and (feed := session.feeds.get((source, kind))) is not None
        ]
        if session is None or not feeds:
            raise NotPublishing(f"{name_of(session_id, source)} publishes nothing to subscribe to")
        name = f"{name_of(session_id, subscriber_id)} <- {source}"
        pc = RTCPeerConnection(rtc_configuration())
        subscription = Subscription(session_id, subscriber_id, source, hidden, pc)
        try:
            if offer_sdp is None:
                for feed in feeds:
                    self._add_sender(subscription, Route(feed, None))
                await pc.setLocalDescription(await pc.createOffer())
                subscription.awaiting_answer = True
            else:
                offer = _parse(offer_sdp, f"the subscribe offer of {name}")
                unused = list(feeds)
                for media in offer.media:
                    if media.kind not in KINDS:
                        continue
                    feed = next((f for f in unused if f.kind == media.kind), None)
                    if feed is None or media.direction not in ("recvonly", "sendrecv"):
                        pc.addTransceiver(media.kind, direction="inactive")
                        continue
                    unused.remove(feed)
                    self._add_sender(subscription, Route(feed, _target(feed, media, name)))
                if not subscription.routes:
                    raise BadOffer(
                        f"the subscribe offer of {name} receives none of "
                        f"{', '.join(f.kind for f in feeds)}"
                    )
                try:
                    await pc.setRemoteDescription(
                        RTCSessionDescription(sdp=offer_sdp, type="offer")
                    )
                except Exception as exc:
                    codecs = ", ".join(
                        f"{r.feed.kind} {r.codec.mimeType}" for r in subscription.routes
                    )
                    raise CodecMismatch(
                        f"subscriber {name} cannot receive {codecs}: {exc!r}"
                    ) from exc
                await pc.setLocalDescription(await pc.createAnswer())
            self._check_running()
            session = self._sessions.get(session_id)
            if session is None or any(
                session.feeds.get((r.feed.participant_id, r.feed.kind)) is not r.feed
                for r in subscription.routes
            ):
                raise NotPublishing(
                    f"{name_of(session_id, source)} stopped publishing during {name}"
                )
        except BaseException:
            subscription.detach()  # nothing is bound to a transcoder yet
            await pc.close()
            raise
        old = self._commit(session, subscription, name)
        if old is not None:  # after the new one is bound: a shared transcoder stays up
            await self._close_subscription(old)
        return str(pc.localDescription.sdp)

    async def accept_answer(
        self, session_id: str, subscriber_id: str, source: str, answer_sdp: str
    ) -> None:
        """The subscriber's answer to an offer :meth:`subscribe` made."""
        self._check_running()
        session = self._sessions.get(session_id)
        subscription = session.subscriptions.get((subscriber_id, source)) if session else None
        name = f"{name_of(session_id, subscriber_id)} <- {source}"
        if subscription is None or not subscription.awaiting_answer:
            raise UnknownSubscription(f"no subscription {name} is waiting for an answer")
        _parse(answer_sdp, f"the answer of {name}")
        try:
            await subscription.pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer_sdp, type="answer")
            )
        except Exception as exc:
            raise CodecMismatch(f"the answer of {name} was refused: {exc!r}") from exc
        subscription.awaiting_answer = False

    async def leave(self, session_id: str, participant_id: str) -> None:
        """Close the participant's upstream (and every subscription to it) and its own
        subscriptions. Leaving twice, or without having joined, does nothing."""
        session = self._sessions.get(session_id)
        if session is None:
            return
        publisher = session.publishers.pop(participant_id, None)
        closing = [
            s
            for key, s in list(session.subscriptions.items())
            if participant_id in (s.subscriber_id, s.source)
            and session.subscriptions.pop(key) is not None
        ]
        for kind in KINDS:
            feed = session.feeds.get((participant_id, kind))
            if feed is not None:
                await self._close_feed(session, feed)
        await asyncio.gather(
            *(self._close_subscription(s) for s in closing),
            *([publisher.pc.close()] if publisher is not None else []),
        )
        if session.empty():
            del self._sessions[session_id]
        logger.info("%s left", name_of(session_id, participant_id))

    def participants(self, session_id: str) -> list[str]:
        """Visible participants of a session: publishers and non-hidden subscribers."""
        session = self._sessions.get(session_id)
        if session is None:
            return []
        visible = set(session.publishers) | {p for p, _ in session.feeds}
        visible |= {s.subscriber_id for s in session.subscriptions.values() if not s.hidden}
        return sorted(visible)

    def stats(self) -> RelayStats:
        feeds: list[FeedStats] = []
        subscriptions: list[SubscriptionStats] = []
        transcoders: list[TranscodeStats] = []
        publishers = 0
        for session in self._sessions.values():
            publishers += len(session.publishers)
            for (participant_id, kind), feed in session.feeds.items():
                transcoders.extend(t.stats() for t in feed.transcoders.values())
                publisher = session.publishers.get(participant_id)
                feeds.append(
                    FeedStats(
                        session_id=feed.session_id,
                        participant_id=participant_id,
                        kind=kind,
                        codec=feed.codec.mimeType,
                        connected=publisher is not None
                        and publisher.pc.connectionState == "connected",
                        frames=feed.frames,
                        keyframes=feed.keyframes_in,
                        bytes=feed.bytes,
                        subscribers=len(feed.tracks),
                        keyframe_requests=feed.keyframes.stats if feed.keyframes else None,
                    )
                )
            for s in session.subscriptions.values():
                tracks = [r.track for r in s.routes if r.track is not None]
                video = next((r for r in s.routes if r.feed.kind == "video"), None)
                subscriptions.append(
                    SubscriptionStats(
                        session_id=s.session_id,
                        subscriber_id=s.subscriber_id,
                        source=s.source,
                        hidden=s.hidden,
                        connection=s.pc.connectionState,
                        sent=sum(t.packets_out for t in tracks),
                        dropped=sum(t.dropped for t in tracks),
                        overflows=sum(t.overflows for t in tracks),
                        queued=sum(t.queued for t in tracks),
                        video_codec=video.codec.mimeType if video else None,
                        transcoded=video is not None and video.target is not None,
                    )
                )
        return RelayStats(
            sessions=len(self._sessions),
            publishers=publishers,
            subscriptions=len(subscriptions),
            hidden_subscriptions=sum(s.hidden for s in subscriptions),
            feeds=tuple(feeds),
            subscription_details=tuple(subscriptions),
            transcoded_feeds=tuple(transcoders),
        )

    # --- internals -----------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._state != "running":
            raise RelayClosed(f'the relay is "{self._state}", not running')

    def _publish_plan(
        self, offer: SessionDescription, name: str
    ) -> list[tuple[Kind, RTCRtpCodecCapability | None]]:
        """For each audio/video m-line of a publish offer: its kind and the codec the relay
        takes (``None``: the m-line is answered inactive)."""
        plan: list[tuple[Kind, RTCRtpCodecCapability | None]] = []
        taken: set[str] = set()
        for media in offer.media:
            if media.kind not in KINDS:
                continue
            kind: Kind = "video" if media.kind == "video" else "audio"
            if media.direction not in ("sendonly", "sendrecv"):
                plan.append((kind, None))
                continue
            if kind in taken:
                raise BadOffer(f"the publish offer of {name} sends more than one {kind} track")
            taken.add(kind)
            common = find_common_codecs(CODECS[kind], media.rtp.codecs)
            wanted = [c.upper() for c in self.config.video_codecs] if kind == "video" else ["OPUS"]
            chosen = next((c for name_ in wanted for c in common if c.name.upper() == name_), None)
            if chosen is None:
                offered = sorted({c.mimeType for c in media.rtp.codecs})
                raise CodecMismatch(
                    f"the publish offer of {name} sends {kind} as {offered}; the relay takes "
                    f"{wanted}"
                )
            plan.append((kind, _capability(kind, chosen)))
        if not taken:
            raise BadOffer(f"the publish offer of {name} sends no audio or video")
        return plan

    def _add_sender(self, subscription: Subscription, route: Route) -> None:
        kind = route.feed.kind
        track = EncodedTrack(
            kind,
            max_queue=self.config.video_queue if kind == "video" else self.config.audio_queue,
            on_keyframe_request=route.on_keyframe_request,
        )
        transceiver = subscription.pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(_preferences(kind, route.codec))
        track.attach(transceiver.sender)
        if route.codec.mimeType.lower() == "video/h264":
            share_packetization(transceiver.sender)  # cut each frame once for all watchers
        route.track = track
        subscription.routes.append(route)

    def _commit(
        self, session: Session, subscription: Subscription, name: str
    ) -> Subscription | None:
        """Put a negotiated subscription in its session and its tracks on their feeds (or
        transcoders), without awaiting; returns the subscription it replaces."""
        key = (subscription.subscriber_id, subscription.source)
        old = session.subscriptions.pop(key, None)
        session.subscriptions[key] = subscription
        for route in subscription.routes:
            assert route.track is not None
            if route.target is None:
                route.feed.tracks.add(route.track)
            else:
                route.transcoder = self._transcoder(route.feed, route.target, name)
                route.transcoder.add(route.track)
        subscription.pc.on("connectionstatechange", lambda: self._subscription_state(subscription))
        transcoded = [
            f"{r.feed.codec.mimeType} as {r.codec.mimeType}"
            for r in subscription.routes
            if r.target
        ]
        logger.info(
            "%s subscribes%s%s",
            name,
            " (hidden)" if subscription.hidden else "",
            f", transcoded: {', '.join(transcoded)}" if transcoded else "",
        )
        return old

    def _transcoder(
        self, feed: Feed, target: RTCRtpCodecCapability, subscriber: str
    ) -> TranscodedFeed:
        """The feed's transcoder to ``target``, started for its first subscriber."""
        codec = target.name.upper()
        transcoder = feed.transcoders.get(codec)
        if transcoder is None:
            transcoder = TranscodedFeed(
                session_id=feed.session_id,
                participant_id=feed.participant_id,
                source_codec=feed.codec.name,
                target_codec=codec,
                want_upstream_keyframe=feed.want_keyframe,
                source_bitrate=feed.meter.bps,
            )
            feed.transcoders[codec] = transcoder
            logger.info(
                "session %s: transcoding %s from %s to %s (first subscriber %s)",
                feed.session_id,
                feed.name,
                transcoder.source_codec,
                transcoder.target_codec,
                subscriber,
            )
        return transcoder

    async def _close_transcoder(self, feed: Feed, transcoder: TranscodedFeed) -> None:
        """Close a transcoder already taken out of ``feed.transcoders`` (synchronously, so
        that no subscriber can join it meanwhile)."""
        await transcoder.close()
        stats = transcoder.stats()
        logger.info(
            "session %s: stopped transcoding %s from %s to %s: %d frames in, %d out, %d dropped",
            feed.session_id,
            feed.name,
            stats.source_codec,
            stats.target_codec,
            stats.frames_in,
            stats.frames_out,
            stats.dropped,
        )

    async def _close_feed(self, session: Session, feed: Feed) -> None:
        session.feeds.pop((feed.participant_id, feed.kind), None)
        for track in feed.tracks:
            track.stop()
        feed.tracks.clear()
        feed.tap = None
        transcoders = list(feed.transcoders.values())
        feed.transcoders.clear()
        await asyncio.gather(*(self._close_transcoder(feed, t) for t in transcoders))
        if feed.keyframe_task is not None:
            feed.keyframe_task.cancel()
            await asyncio.gather(feed.keyframe_task, return_exceptions=True)
            feed.keyframe_task = None

    async def _close_subscription(self, subscription: Subscription) -> None:
        emptied = [
            (feed, t)
            for feed, t in subscription.detach()
            if feed.transcoders.get(t.target_codec) is t
            and feed.transcoders.pop(t.target_codec) is t
        ]
        await asyncio.gather(
            subscription.pc.close(), *(self._close_transcoder(f, t) for f, t in emptied)
        )

    async def _close_session(self, session: Session) -> None:
        subscriptions = list(session.subscriptions.values())
        session.subscriptions.clear()
        await asyncio.gather(*(self._close_subscription(s) for s in subscriptions))
        for feed in list(session.feeds.values()):
            await self._close_feed(session, feed)
        publishers = list(session.publishers.values())
        session.publishers.clear()
        await asyncio.gather(*(p.pc.close() for p in publishers))

    def _publisher_state(self, publisher: Publisher) -> None:
        state = publisher.pc.connectionState
        name = name_of(publisher.session_id, publisher.participant_id)
        logger.info("%s upstream is %s", name, state)
        if state == "failed" and self._state == "running":
            session = self._sessions.get(publisher.session_id)
            if (
                session is not None
                and session.publishers.get(publisher.participant_id) is publisher
            ):
                # keep the feeds and their subscribers: the participant may publish again
                del session.publishers[publisher.participant_id]
                self._spawn(publisher.pc.close(), f"close upstream {name}")

    def _subscription_state(self, subscription: Subscription) -> None:
        state = subscription.pc.connectionState
        who = name_of(subscription.session_id, subscription.subscriber_id)
        name = f"{who} <- {subscription.source}"
        logger.info("%s is %s", name, state)
        if state == "failed" and self._state == "running":
            session = self._sessions.get(subscription.session_id)
            key = (subscription.subscriber_id, subscription.source)
            if session is not None and session.subscriptions.get(key) is subscription:
                del session.subscriptions[key]
                self._spawn(self._close_subscription(subscription), f"close {name}")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run a task the relay owns: :meth:`stop` cancels and awaits it; an unexpected error is
        logged with its traceback."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("relay task %s failed", task.get_name(), exc_info=exc)
