"""The hub relay with real aiortc peers over UDP on 127.0.0.1: a publisher sending stamped H.264
at 15 fps (pre-encoded, keyframes only on request), subscribers decoding and reading stamps."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.media import NotPublishing, Relay, RelayClosed, UnknownSubscription
from runtime.rtc import EncodedTrack
from tests.media.peers import (
    DecodingSubscriber,
    StampedPublisher,
    closing,
    opus_packets,
    publish_stamped,
    wait_for,
)

SESSION = "s1"
BOX = "box"


async def _publish(relay: Relay) -> StampedPublisher:
    return await publish_stamped(relay, SESSION, BOX)


async def _subscribe(
    relay: Relay, subscriber_id: str, *, subscriber_offers: bool = False, hidden: bool = False
) -> DecodingSubscriber:
    subscriber = DecodingSubscriber()
    if subscriber_offers:
        offer = await subscriber.make_offer()
        answer = await relay.subscribe(SESSION, subscriber_id, BOX, offer, hidden=hidden)
        await subscriber.take_answer(answer)
    else:
        offer = await relay.subscribe(SESSION, subscriber_id, BOX, hidden=hidden)
        answer = await subscriber.answer_offer(offer)
        await relay.accept_answer(SESSION, subscriber_id, BOX, answer)
    return subscriber


def _consecutive(stamps: list[int]) -> bool:
    return bool(stamps) and stamps == list(range(stamps[0], stamps[0] + len(stamps)))


async def _feed_running(relay: Relay) -> None:
    await wait_for(
        lambda: any(f.frames > 0 for f in relay.stats().feeds), 10, "frames at the relay"
    )


async def test_every_frame_reaches_two_subscribers_in_order(relay: Relay) -> None:
    publisher = await _publish(relay)
    first = await _subscribe(relay, "official")
    second = await _subscribe(relay, "recorder", subscriber_offers=True)
    try:
        await asyncio.wait_for(
            asyncio.gather(first.first_frame.wait(), second.first_frame.wait()), 10
        )
        await asyncio.sleep(3)
        await publisher.stop_sending()
        last = publisher.sent
        for subscriber in (first, second):
            stamps = subscriber.stamps
            await wait_for(lambda: last in stamps, 5, f"frame {last}")  # noqa: B023
            assert _consecutive(subscriber.stamps), subscriber.stamps
            assert subscriber.stamps[-1] == last
            assert len(subscriber.stamps) >= 40, "3 s at 15 fps"
            assert subscriber.unreadable == 0
        stats = relay.stats()
        assert stats.publishers == 1 and stats.subscriptions == 2
        assert all(s.overflows == 0 for s in stats.subscription_details)
        (feed,) = stats.feeds
        assert (feed.kind, feed.codec, feed.subscribers) == ("video", "video/H264", 2)
    finally:
        await closing(publisher.close, first.close, second.close)


async def test_a_late_subscriber_gets_a_picture_within_a_second(relay: Relay) -> None:
    publisher = await _publish(relay)
    early = await _subscribe(relay, "official")
    late: DecodingSubscriber | None = None
    try:
        await asyncio.wait_for(early.first_frame.wait(), 10)
        await asyncio.sleep(1.2)  # past the keyframe throttle; no keyframe since (keyint 1000)
        keyframes_before = len(publisher.keyframes_sent)
        joined = time.monotonic()
        late = await _subscribe(relay, "monitor", hidden=True)
        await asyncio.wait_for(late.first_frame.wait(), 5)
        assert late.connected_at is not None
        assert late.arrivals[0] - late.connected_at <= 1.0
        assert any(t > joined for t in publisher.remote_requests()), "the PLI reached the box"
        assert len(publisher.keyframes_sent) > keyframes_before
        assert _consecutive(late.stamps) and _consecutive(early.stamps)
    finally:
        await closing(publisher.close, early.close, *([late.close] if late else []))


async def test_five_joins_at_once_make_at_most_two_keyframe_requests_a_second(
    relay: Relay,
) -> None:
    publisher = await _publish(relay)
    subscribers: list[DecodingSubscriber] = []
    try:
        await _feed_running(relay)
        joined = time.monotonic()
        subscribers = list(
            await asyncio.gather(*(_subscribe(relay, f"monitor-{i}") for i in range(5)))
        )
        await asyncio.wait_for(asyncio.gather(*(s.first_frame.wait() for s in subscribers)), 15)
        requests = [t for t in publisher.remote_requests() if t >= joined]
        assert requests, "no keyframe request reached the publisher"
        for start in requests:
            in_window = [t for t in requests if start <= t < start + 1.0]
            assert len(in_window) <= 2, f"keyframe requests at {[t - joined for t in requests]}"
        (feed,) = relay.stats().feeds
        assert feed.keyframe_requests is not None
        assert feed.keyframe_requests.asked >= 5
        assert feed.keyframe_requests.sent == len(requests)
    finally:
        await closing(publisher.close, *(s.close for s in subscribers))


async def test_a_hidden_subscriber_changes_nothing_the_others_see(relay: Relay) -> None:
    publisher = await _publish(relay)
    official = await _subscribe(relay, "official", subscriber_offers=True)
    monitor: DecodingSubscriber | None = None
    try:
        await asyncio.wait_for(official.first_frame.wait(), 10)
        before = (
            list(publisher.events),
            len(publisher.pc.getTransceivers()),
            list(official.events),
            len(official.pc.getTransceivers()),
        )
        assert relay.participants(SESSION) == [BOX, "official"]

        monitor = await _subscribe(relay, "monitor", hidden=True)
        await asyncio.wait_for(monitor.first_frame.wait(), 5)
        await asyncio.sleep(0.5)
        after = (
            list(publisher.events),
            len(publisher.pc.getTransceivers()),
            list(official.events),
            len(official.pc.getTransceivers()),
        )
        assert after == before, "no renegotiation and no new track for the others"
        assert publisher.pc.signalingState == official.pc.signalingState == "stable"
        assert relay.participants(SESSION) == [BOX, "official"]
        assert relay.stats().hidden_subscriptions == 1

        await relay.leave(SESSION, "monitor")
        seen = len(official.stamps)
        await wait_for(lambda: len(official.stamps) > seen + 5, 5, "frames after the monitor left")
        assert _consecutive(official.stamps), "the official lost no frame"
        assert relay.participants(SESSION) == [BOX, "official"]
        assert relay.stats().subscriptions == 1
    finally:
        await closing(publisher.close, official.close, *([monitor.close] if monitor else []))


async def test_opus_audio_passes_through_beside_the_video(relay: Relay) -> None:
    publisher = StampedPublisher()
    audio = EncodedTrack("audio")
    publisher.pc.addTransceiver(audio, direction="sendonly")
    await publisher.answer(await relay.publish(SESSION, BOX, await publisher.offer()))
    publisher.start()
    packets = opus_packets()

    async def speak() -> None:
        while True:
            audio.put(next(packets))
            await asyncio.sleep(0.02)

    speaking = asyncio.create_task(speak())
    subscriber = await _subscribe(relay, "official")
    try:
        await wait_for(lambda: subscriber.audio_samples >= 48000, 10, "1 s of decoded audio")
        await asyncio.wait_for(subscriber.first_frame.wait(), 5)
        kinds = {(f.kind, f.codec) for f in relay.stats().feeds}
        assert kinds == {("video", "video/H264"), ("audio", "audio/opus")}
    finally:
        speaking.cancel()
        await asyncio.gather(speaking, return_exceptions=True)
        await closing(publisher.close, subscriber.close)


async def test_relay_refuses_what_it_cannot_do(relay: Relay) -> None:
    with pytest.raises(NotPublishing, match="s1/nobody publishes nothing"):
        await relay.subscribe(SESSION, "official", "nobody")
    with pytest.raises(UnknownSubscription):
        await relay.accept_answer(SESSION, "official", BOX, "v=0\r\n")
    await relay.leave(SESSION, "nobody")  # leaving without joining does nothing
    await relay.stop()
    await relay.stop()
    with pytest.raises(RelayClosed, match='"stopped"'):
        await relay.publish(SESSION, BOX, "v=0\r\n")
