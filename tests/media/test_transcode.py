"""Watchers whose browser cannot decode the publisher's codec, with real aiortc peers over UDP on
127.0.0.1: an H.264 publisher of stamped frames at 15 fps (keyframes only on request) and VP8-only
subscribers, served by one transcoded feed at the relay, beside an H.264 subscriber served as
before, frame for frame."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest

from hub.media import CodecMismatch, Relay, RelayConfig
from hub.media.sessions import SubscriptionStats
from tests.media.peers import (
    DecodingSubscriber,
    StampedPublisher,
    closing,
    publish_stamped,
    wait_for,
)

SESSION = "s1"
BOX = "box"


async def _publish(relay: Relay, codec: str = "H264") -> StampedPublisher:
    return await publish_stamped(relay, SESSION, BOX, codec)


async def _subscribe(relay: Relay, subscriber_id: str, *codecs: str) -> DecodingSubscriber:
    """A subscriber that offers only ``codecs`` (all of aiortc's when none), hidden."""
    subscriber = DecodingSubscriber()
    offer = await (subscriber.make_offer_for(*codecs) if codecs else subscriber.make_offer())
    subscriber_answer = await relay.subscribe(SESSION, subscriber_id, BOX, offer, hidden=True)
    await subscriber.take_answer(subscriber_answer)
    return subscriber


def _subscription(relay: Relay, subscriber_id: str) -> SubscriptionStats:
    (found,) = [s for s in relay.stats().subscription_details if s.subscriber_id == subscriber_id]
    return found


def _transcoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("transcode ")]


def _increasing(stamps: list[int]) -> bool:
    return all(b > a for a, b in itertools.pairwise(stamps))


async def test_vp8_watchers_of_an_h264_box_share_one_transcoded_feed(relay: Relay) -> None:
    publisher = await _publish(relay)
    official = await _subscribe(relay, "official")
    vp8 = [await _subscribe(relay, f"monitor-{i}", "video/VP8") for i in range(2)]
    late: DecodingSubscriber | None = None
    try:
        everyone = [official, *vp8]
        await asyncio.wait_for(asyncio.gather(*(s.first_frame.wait() for s in everyone)), 10)
        first = publisher.sent + 1
        await asyncio.sleep(4)

        # (a) the H.264 subscriber is served as it always was: pass-through, not transcoded
        stats = relay.stats()
        assert _subscription(relay, "official").transcoded is False
        assert _subscription(relay, "official").video_codec == "video/H264"
        (feed,) = stats.feeds
        assert (feed.codec, feed.subscribers) == ("video/H264", 1), "only the official's track"
        # (b) both VP8 subscribers get VP8 from ONE transcoded feed
        for i in range(2):
            sub = _subscription(relay, f"monitor-{i}")
            assert (sub.transcoded, sub.video_codec) == (True, "video/VP8")
        (transcoded,) = stats.transcoded_feeds
        assert (transcoded.source_codec, transcoded.target_codec) == ("H264", "VP8")
        assert transcoded.subscribers == 2 and transcoded.running
        assert transcoded.frames_out >= 55 and transcoded.errors == 0
        assert len(_transcoder_threads()) == 1

        # a VP8 subscriber joining mid-stream: a picture within 1 s, and the box is not asked
        joined = time.monotonic()
        late = await _subscribe(relay, "monitor-late", "video/VP8")
        await asyncio.wait_for(late.first_frame.wait(), 5)
        assert late.connected_at is not None
        assert late.arrivals[0] - late.connected_at <= 1.0
        assert not [t for t in publisher.remote_requests() if t > joined], (
            "the transcoder made its own keyframe"
        )
        assert relay.stats().transcoded_feeds[0].subscribers == 3

        await publisher.stop_sending()
        last = publisher.sent
        sent = range(first, last + 1)
        for who, subscriber in (
            ("official", official),
            ("monitor-0", vp8[0]),
            ("monitor-1", vp8[1]),
        ):
            stamps = subscriber.stamps
            await wait_for(lambda: last in stamps, 5, f"frame {last} at {who}")  # noqa: B023
            assert _increasing(stamps), f"{who}: {stamps}"
            covered = len(set(stamps) & set(sent))
            assert covered >= 0.9 * len(sent), f"{who}: {covered} of {len(sent)} frames"
            assert subscriber.unreadable == 0, f"{who}: {subscriber.unreadable} unreadable"
        assert official.stamps == list(range(official.stamps[0], last + 1)), "not one lost"

        # the last VP8 watcher leaving ends the transcoded feed and its thread
        (thread,) = _transcoder_threads()
        for subscriber_id in ("monitor-0", "monitor-1"):
            await relay.leave(SESSION, subscriber_id)
        assert relay.stats().transcoded_feeds[0].subscribers == 1
        await relay.leave(SESSION, "monitor-late")
        assert relay.stats().transcoded_feeds == ()
        assert not thread.is_alive()
        assert [s.subscriber_id for s in relay.stats().subscription_details] == ["official"]
    finally:
        await closing(publisher.close, official.close, *(s.close for s in vp8))
        if late is not None:
            await late.close()


async def test_a_vp8_box_is_transcoded_to_h264_for_an_h264_only_watcher(relay: Relay) -> None:
    publisher = await _publish(relay, "VP8")
    watcher = await _subscribe(relay, "monitor", "video/H264")
    try:
        await asyncio.wait_for(watcher.first_frame.wait(), 10)
        seen = len(watcher.stamps)
        await wait_for(lambda: len(watcher.stamps) >= seen + 30, 5, "2 s of frames")
        assert _increasing(watcher.stamps) and watcher.unreadable == 0
        assert _subscription(relay, "monitor").video_codec == "video/H264"
        (transcoded,) = relay.stats().transcoded_feeds
        assert (transcoded.source_codec, transcoded.target_codec) == ("VP8", "H264")
    finally:
        await closing(publisher.close, watcher.close)


async def test_closing_the_relay_while_transcoding_leaves_no_task_or_thread() -> None:
    relay = Relay(RelayConfig())
    await relay.start()
    publisher = await _publish(relay)
    watcher = await _subscribe(relay, "monitor", "video/VP8")
    try:
        await asyncio.wait_for(watcher.first_frame.wait(), 10)
        (thread,) = _transcoder_threads()
        await relay.stop()
        assert not thread.is_alive()
        assert _transcoder_threads() == []
        relay_tasks = [
            t
            for t in asyncio.all_tasks()
            if "hub/media" in getattr(t.get_coro(), "cr_code", t.get_coro()).co_filename  # type: ignore[union-attr]
        ]
        assert relay_tasks == []
        assert relay.stats().transcoded_feeds == ()
    finally:
        await closing(publisher.close, watcher.close)
        await relay.stop()


async def test_a_subscriber_that_decodes_neither_codec_gets_codec_mismatch(relay: Relay) -> None:
    publisher = await _publish(relay)
    subscriber = DecodingSubscriber()
    try:
        offer = await subscriber.make_offer_for("video/VP8")
        vp9_only = offer.replace(" VP8/90000", " VP9/90000")
        assert vp9_only != offer
        with pytest.raises(CodecMismatch, match=r"\['video/VP9'\].*video/H264.*VP8"):
            await relay.subscribe(SESSION, "monitor", BOX, vp9_only, hidden=True)
        assert relay.stats().subscriptions == 0
        assert relay.stats().transcoded_feeds == ()
        assert _transcoder_threads() == []
    finally:
        await closing(publisher.close, subscriber.close)
