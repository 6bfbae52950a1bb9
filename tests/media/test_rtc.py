"""runtime/rtc.py: the aiortc internals it patches, the low-latency jitter buffer, and the
pass-through track and tap, with real aiortc peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import queue
import time
from collections.abc import Iterator
from typing import Any

import aioice.ice
import aiortc
import aiortc.rtcrtpreceiver
import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from runtime import rtc
from runtime.rtc import (
    AIORTC_VERSION,
    EncodedFrame,
    EncodedTap,
    EncodedTrack,
    LowLatencyJitterBuffer,
    h264_is_keyframe,
    internals_problems,
    rtc_configuration,
    vp8_is_keyframe,
)
from tests.media.peers import X264, StampedPublisher, read_stamp, stamped_frame, wait_for

# --- the internals (fail loudly when aiortc changes) -----------------------------------------


async def test_aiortc_is_the_version_whose_internals_are_patched() -> None:
    assert aiortc.__version__ == AIORTC_VERSION, (
        f"aiortc {aiortc.__version__} is installed; runtime/rtc.py was written against "
        f"{AIORTC_VERSION}: re-read jitterbuffer.py, rtcrtpreceiver.py and rtcrtpsender.py"
    )
    assert internals_problems() == []


async def test_receivers_and_senders_have_the_private_parts_used() -> None:
    pc = RTCPeerConnection(rtc_configuration())
    try:
        transceiver = pc.addTransceiver("video", direction="sendrecv")
        receiver = transceiver.receiver
        assert getattr(receiver, rtc._RX_KIND) == "video"
        assert isinstance(getattr(receiver, rtc._RX_DECODER_QUEUE), queue.Queue)
        assert isinstance(getattr(receiver, rtc._RX_JITTER_BUFFER), JitterBuffer)
        assert isinstance(getattr(receiver, rtc._RX_RTCP_SSRC), int)
        assert callable(transceiver.sender._send_keyframe)
        audio = pc.addTransceiver("audio", direction="recvonly").receiver
        buffer = getattr(audio, rtc._RX_JITTER_BUFFER)
        assert (buffer.capacity, buffer._prefetch) == (16, 4), "aiortc's audio buffer changed"

        frames: list[EncodedFrame] = []
        EncodedTap(receiver, frames.append)
        assert isinstance(getattr(receiver, rtc._RX_JITTER_BUFFER), LowLatencyJitterBuffer)
        with pytest.raises(ValueError, match="already tapped"):
            EncodedTap(receiver, frames.append)
    finally:
        await pc.close()


def test_configuration_has_no_ice_servers_and_loopback_is_offered() -> None:
    assert rtc_configuration().iceServers == []
    assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]  # conftest applies it
    with rtc.loopback_ice():  # nested and idempotent
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]


# --- the low-latency jitter buffer -----------------------------------------------------------


def _rtp(seq: int, timestamp: int, marker: int, data: bytes) -> RtpPacket:
    packet = RtpPacket(sequence_number=seq, timestamp=timestamp, marker=marker)
    packet._data = data  # type: ignore[attr-defined]  # set by RTCRtpReceiver in aiortc
    return packet


def test_stock_buffer_holds_a_complete_frame_until_the_next_one_starts() -> None:
    """The premise of install_low_latency(); when this fails, aiortc fixed it upstream."""
    stock = JitterBuffer(capacity=128, is_video=True)
    outs = [stock.add(p)[1] for p in (_rtp(10, 900, 0, b"a"), _rtp(11, 900, 1, b"b"))]
    assert outs == [None, None]
    released = stock.add(_rtp(12, 6900, 0, b"c"))[1]
    assert released is not None and released.data == b"ab"


def test_low_latency_buffer_releases_on_the_marker_packet() -> None:
    buffer = LowLatencyJitterBuffer(capacity=128, is_video=True)
    assert buffer.add(_rtp(10, 900, 0, b"a"))[1] is None
    frame = buffer.add(_rtp(11, 900, 1, b"b"))[1]
    assert frame is not None and (frame.data, frame.timestamp) == (b"ab", 900)

    # the marker arrives before a middle packet: released when the gap is filled
    assert buffer.add(_rtp(12, 6900, 0, b"c"))[1] is None
    assert buffer.add(_rtp(14, 6900, 1, b"e"))[1] is None
    frame = buffer.add(_rtp(13, 6900, 0, b"d"))[1]
    assert frame is not None and frame.data == b"cde"

    # a frame whose marker packet is lost is released when the next frame starts
    assert buffer.add(_rtp(15, 12900, 0, b"f"))[1] is None
    frame = buffer.add(_rtp(17, 18900, 0, b"h"))[1]
    assert frame is None  # 16 missing: the buffer waits (aiortc NACKs it)
    frame = buffer.add(_rtp(16, 12900, 0, b"g"))[1]
    assert frame is not None and frame.data == b"fg"

    # a late duplicate of a released packet is ignored
    assert buffer.add(_rtp(11, 900, 1, b"b"))[1] is None


def test_per_packet_buffer_releases_every_packet() -> None:
    buffer = LowLatencyJitterBuffer(capacity=16, per_packet=True)
    for seq in range(5):
        frame = buffer.add(_rtp(seq, seq * 960, 0, bytes([seq])))[1]
        assert frame is not None and frame.data == bytes([seq])


def test_audio_keeps_aiortc_prefetch_under_install_low_latency() -> None:
    buffer = LowLatencyJitterBuffer(capacity=16, prefetch=4)
    outs = [buffer.add(_rtp(seq, seq * 960, 1, b"x"))[1] for seq in range(4)]
    assert outs == [None] * 4


@contextlib.contextmanager
def _stock_jitter_buffer() -> Iterator[None]:
    """Receivers created inside get aiortc's own video jitter buffer."""
    patched = aiortc.rtcrtpreceiver.JitterBuffer  # type: ignore[attr-defined]
    aiortc.rtcrtpreceiver.JitterBuffer = JitterBuffer  # type: ignore[attr-defined]
    try:
        yield
    finally:
        aiortc.rtcrtpreceiver.JitterBuffer = patched  # type: ignore[attr-defined]


class _HeldTrack(MediaStreamTrack):
    """Stamped raw frames at 15 fps (aiortc encodes them) until ``hold`` is set; then no more
    frames until ``resume``."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.sent = -1
        self.hold = False
        self.held = asyncio.Event()
        self.resume = asyncio.Event()

    async def recv(self) -> av.VideoFrame:
        if self.sent >= 0:
            await asyncio.sleep(1 / 15)
        if self.hold:
            self.held.set()
            await self.resume.wait()
        self.sent += 1
        return stamped_frame(self.sent)


@pytest.mark.parametrize("low_latency", [True, False], ids=["low-latency", "stock"])
async def test_receiver_delivers_a_frame_before_the_next_is_sent(low_latency: bool) -> None:
    """Sender -> receiver on loopback; the sender stops after frame P. With the low-latency
    buffer P is decoded while the sender still holds the next frame; with aiortc's stock
    buffer it is not (it comes out only with the next frame)."""
    track = _HeldTrack()
    sender_pc = RTCPeerConnection(rtc_configuration())
    receiver_pc = RTCPeerConnection(rtc_configuration())
    stamps: list[int] = []
    try:
        context = contextlib.nullcontext() if low_latency else _stock_jitter_buffer()
        with context:
            transceiver = receiver_pc.addTransceiver("video", direction="recvonly")
        buffer_type = type(getattr(transceiver.receiver, rtc._RX_JITTER_BUFFER))
        assert buffer_type is (LowLatencyJitterBuffer if low_latency else JitterBuffer)
        h264 = [
            c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"
        ]
        transceiver.setCodecPreferences(h264)
        sender_pc.addTrack(track)

        async def read() -> None:
            remote = transceiver.receiver.track
            while True:
                stamp = read_stamp(await remote.recv())
                if stamp is not None:
                    stamps.append(stamp)

        await receiver_pc.setLocalDescription(await receiver_pc.createOffer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        await sender_pc.setLocalDescription(await sender_pc.createAnswer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        reader = asyncio.create_task(read())

        await wait_for(lambda: len(stamps) >= 3, 15, "three decoded frames")
        track.hold = True
        await asyncio.wait_for(track.held.wait(), 2)
        last = track.sent
        if low_latency:
            await wait_for(lambda: last in stamps, 2, f"frame {last} while the next is held")
            assert not track.resume.is_set() and track.sent == last
        else:
            await asyncio.sleep(0.5)
            assert last not in stamps, "aiortc's stock buffer released a frame on its own"
            track.resume.set()
            await wait_for(lambda: last in stamps, 2, f"frame {last} after the next was sent")
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    finally:
        track.resume.set()
        await asyncio.gather(sender_pc.close(), receiver_pc.close())


# --- keyframe detection ----------------------------------------------------------------------


def test_h264_keyframes_are_recognised() -> None:
    encoder = X264()
    flags = []
    for frame_no in range(4):
        for packet in encoder.encode(stamped_frame(frame_no), keyframe=frame_no in (0, 3)):
            flags.append(h264_is_keyframe(bytes(packet)))
    assert flags == [True, False, False, True]


def test_vp8_keyframes_are_recognised() -> None:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = 320, 240, "yuv420p"
    codec.time_base = fractions.Fraction(1, 15)
    codec.options = {"deadline": "realtime", "lag-in-frames": "0"}
    flags = []
    for frame_no in range(3):
        frame = stamped_frame(frame_no)
        frame.pict_type = av.video.frame.PictureType.NONE
        flags += [vp8_is_keyframe(bytes(p)) for p in codec.encode(frame)]
    assert flags[0] is True and flags[1:] == [False] * (len(flags) - 1)


# --- pass-through: EncodedTrack out, EncodedTap in -------------------------------------------


def _keyframe_packet(keyframe: bool, pts: int = 0) -> av.Packet[Any]:
    packet = av.Packet(b"\x00\x00\x00\x01\x65" if keyframe else b"\x00\x00\x00\x01\x41")
    packet.pts = pts
    packet.time_base = fractions.Fraction(1, 90000)
    packet.is_keyframe = keyframe
    return packet


async def test_encoded_track_waits_for_keyframes_and_bounds_its_queue() -> None:
    requests: list[str] = []
    track = EncodedTrack("video", max_queue=3, on_keyframe_request=requests.append)
    assert not track.put(_keyframe_packet(True)), "nothing is queued before the sender starts"
    receiving = asyncio.create_task(track.recv())
    await asyncio.sleep(0)
    assert requests == ["start"]
    assert not track.put(_keyframe_packet(False, 1)), "a delta frame before any keyframe"
    assert track.put(_keyframe_packet(True, 2))
    assert (await receiving).pts == 2
    for pts in range(3, 6):
        assert track.put(_keyframe_packet(False, pts))
    assert not track.put(_keyframe_packet(False, 6)), "the fourth packet overflows"
    assert (track.queued, track.overflows, requests) == (0, 1, ["start", "overflow"])
    assert track.waiting_for_keyframe
    assert not track.put(_keyframe_packet(False, 7))
    assert track.put(_keyframe_packet(True, 8))
    assert (await track.recv()).pts == 8
    track.stop()
    with pytest.raises(aiortc.mediastreams.MediaStreamError):
        await track.recv()


async def test_encoded_frames_pass_through_and_pli_reaches_the_track_owner() -> None:
    publisher = StampedPublisher()
    receiver_pc = RTCPeerConnection(rtc_configuration())
    frames: list[EncodedFrame] = []
    try:
        await receiver_pc.setRemoteDescription(
            RTCSessionDescription(sdp=await publisher.offer(), type="offer")
        )
        receiver = receiver_pc.getTransceivers()[0].receiver
        tap = EncodedTap(receiver, frames.append)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await publisher.answer(receiver_pc.localDescription.sdp)
        publisher.start()
        await wait_for(lambda: len(frames) >= 10, 15, "ten encoded frames at the tap")

        assert frames[0].keyframe and not any(f.keyframe for f in frames[1:10])
        assert {f.codec for f in frames} == {"H264"} and frames[0].clock_rate == 90000
        steps = {b.timestamp - a.timestamp for a, b in itertools.pairwise(frames[:10])}
        assert steps == {6000}, "one 15 fps frame interval in 90 kHz units"
        decoder = av.CodecContext.create("h264", "r")
        decoded = [read_stamp(p) for f in frames[:10] for p in decoder.decode(f.to_packet())]
        first = decoded[0]
        assert first is not None and decoded == list(range(first, first + len(decoded)))
        assert receiver.track is not None
        assert receiver.track._queue.empty(), "the tapped receiver decoded nothing"  # type: ignore[attr-defined]

        asked_at = time.monotonic()
        assert await tap.request_keyframe()
        await wait_for(lambda: publisher.remote_requests() != [], 5, "the PLI at the publisher")
        await wait_for(
            lambda: any(f.keyframe and f.received > asked_at for f in frames),
            5,
            "a keyframe after the PLI",
        )
    finally:
        await asyncio.gather(publisher.close(), receiver_pc.close())


def test_encoded_frame_packet_carries_timing_and_keyframe_flag() -> None:
    frame = EncodedFrame("video", "VP8", 90000, 12000, b"\x10\x02", keyframe=True)
    packet = frame.to_packet()
    assert (packet.pts, packet.time_base, packet.is_keyframe) == (
        12000,
        fractions.Fraction(1, 90000),
        True,
    )
    assert bytes(packet) == b"\x10\x02"
    assert np.frombuffer(bytes(packet), np.uint8).size == 2


# --- faster sending ----------------------------------------------------------------------------


def test_fast_ntp_time_is_aiortcs_ntp_time() -> None:
    stock = aiortc.clock.datetime_to_ntp(aiortc.clock.current_datetime())
    fast = rtc.fast_ntp_time()
    again = aiortc.clock.datetime_to_ntp(aiortc.clock.current_datetime())
    assert stock >> 32 > 3_900_000_000  # seconds since 1900: after 2023
    assert stock <= fast <= again + (1 << 32) // 1_000_000  # within aiortc's microsecond
    rtc.install_fast_clock()
    assert aiortc.clock.current_ntp_time is rtc.fast_ntp_time
    assert abs(aiortc.clock.current_ntp_time() - fast) < (1 << 32)  # the same second or so


def test_shared_packer_cuts_a_packet_once_for_every_sender() -> None:
    encoder = X264()
    packets = [p for i in range(8) for p in encoder.encode(stamped_frame(i), i == 0)]
    assert len(packets) >= 4
    stock, first, second = (
        aiortc.codecs.h264.H264Encoder(),
        rtc.SharedH264Packer(),
        rtc.SharedH264Packer(),
    )
    for packet in packets:
        packed = first.pack(packet)
        assert packed == stock.pack(packet)  # the same payloads and timestamp as aiortc's
        assert second.pack(packet) is packed  # cut once
    assert len(first.pack(packets[0])[0]) > 1  # the keyframe takes several payloads
    copy = packets[-1].__class__(bytes(packets[-1]))
    copy.pts, copy.time_base = packets[-1].pts, packets[-1].time_base
    assert first.pack(copy) is not packed and first.pack(copy) == packed  # another packet object


async def test_share_packetization_only_before_the_sender_starts() -> None:
    pc = RTCPeerConnection(rtc_configuration())
    try:
        sender = pc.addTransceiver(EncodedTrack("video"), direction="sendonly").sender
        rtc.share_packetization(sender)
        assert isinstance(getattr(sender, rtc._RX_SENDER_ENCODER), rtc.SharedH264Packer)
        with pytest.raises(ValueError, match="before the sender starts"):
            rtc.share_packetization(sender)
    finally:
        await pc.close()
