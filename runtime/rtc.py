"""What every aiortc peer of this project uses: the hub relay, the box, the tests.

- :func:`rtc_configuration`: no STUN server (aiortc asks a public one when ``iceServers`` is
  left unset); peers reach each other by host candidates.
- :func:`loopback_ice`: let aioice offer 127.0.0.1 as its only host candidate, for loopback
  tests and ``xfv demo``. Production never calls it.
- :func:`install_low_latency`: aiortc 1.16's video jitter buffer releases a frame only when the
  *next* frame's first packet arrives, one frame interval (67 ms at 15 fps) at every receiving
  hop. After this call every video receiver releases a frame as soon as its marker-bit packet,
  and every packet from the frame's first one, are in.
- :class:`EncodedTrack`: a track whose ``recv()`` yields pre-encoded ``av.Packet`` s, which
  aiortc's sender packetizes without encoding; keyframe requests (PLI/FIR) that aiortc's sender
  ignores for such packets reach the track's owner.
- :class:`EncodedTap`: a remote track's *encoded* frames (H.264 access units, VP8 frames, Opus
  packets) taken from the receiver's jitter buffer instead of the decoder, and PLI on demand.
- :func:`share_packetization`: the senders that send one pre-encoded H.264 packet (a relay's
  watchers of one publisher) cut it into RTP payloads once between them, not once each.
- :func:`install_fast_clock`: aiortc reads the NTP time twice per RTP packet sent through
  ``datetime`` arithmetic; this reads it from ``time.time_ns()``, same value, a fifth the cost.

All but :func:`rtc_configuration` reach into aiortc's internals, so they are checked against the
pinned aiortc version (``AIORTC_VERSION``) and the exact attributes and code they rely on
(:func:`internals_problems`); ``tests/media/test_rtc.py`` fails loudly when aiortc changes.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import inspect
import logging
import queue
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import aioice.ice
import aiortc
import aiortc.clock
import aiortc.rtcdtlstransport
import aiortc.rtcrtpreceiver
import av
from aiortc import RTCConfiguration, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import h264, opus, vpx
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from runtime.errors import RuntimeFailure

logger = logging.getLogger(__name__)

AIORTC_VERSION = "1.16.0"
"""The aiortc release whose internals this module was written against (pinned in pyproject)."""

LOOPBACK = "127.0.0.1"

Kind = Literal["audio", "video"]

# RTCRtpReceiver's private attributes (name-mangled) that EncodedTap swaps or reads
_RX_KIND = "_RTCRtpReceiver__kind"
_RX_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_RX_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_RX_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
_RX_SENDER_ENCODER = "_RTCRtpSender__encoder"
# module globals this module replaces
_RECEIVER_JITTER_BUFFER = "JitterBuffer"  # in aiortc.rtcrtpreceiver
_HOST_ADDRESSES = "get_host_addresses"  # in aioice.ice
KeyframeReason = Literal["start", "overflow", "remote"]


class RtcInternalsChanged(RuntimeFailure):
    """The installed aiortc/aioice is not the one whose internals this module patches."""


def rtc_configuration() -> RTCConfiguration:
    """The configuration of every peer connection here: no ICE servers (so no public STUN)."""
    return RTCConfiguration(iceServers=[])


# --- aiortc internals ------------------------------------------------------------------------


def _code_names(function: object) -> set[str]:
    code = getattr(function, "__code__", None)
    return set(code.co_names) if code is not None else set()


def _params(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def internals_problems() -> list[str]:
    """Every aiortc/aioice internal this module relies on that is missing or changed; empty when
    all is as in aiortc 1.16.0 (and aioice 0.13)."""
    problems: list[str] = []
    if aiortc.__version__ != AIORTC_VERSION:
        problems.append(f"aiortc is {aiortc.__version__!r}, this module needs {AIORTC_VERSION!r}")

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    receiver_cls = aiortc.rtcrtpreceiver.RTCRtpReceiver
    expect(
        getattr(aiortc.rtcrtpreceiver, "JitterBuffer", None)
        in (JitterBuffer, LowLatencyJitterBuffer),
        "aiortc.rtcrtpreceiver no longer imports JitterBuffer as a module global",
    )
    expect(
        {"JitterBuffer", _RX_KIND, _RX_JITTER_BUFFER, _RX_DECODER_QUEUE}
        <= _code_names(receiver_cls.__init__),
        "RTCRtpReceiver.__init__ no longer builds __jitter_buffer from JitterBuffer and "
        "__decoder_queue",
    )
    expect(
        {_RX_JITTER_BUFFER, _RX_DECODER_QUEUE, "add", "put", "_data"}
        <= _code_names(receiver_cls._handle_rtp_packet),
        "RTCRtpReceiver._handle_rtp_packet no longer feeds packet._data to __jitter_buffer.add "
        "and puts (codec, frame) on __decoder_queue",
    )
    expect(
        "get" in _code_names(aiortc.rtcrtpreceiver.decoder_worker),
        "aiortc.rtcrtpreceiver.decoder_worker no longer reads its input queue with get()",
    )
    expect(
        _params(receiver_cls._send_rtcp_pli) == ["self", "media_ssrc"],
        "RTCRtpReceiver._send_rtcp_pli(media_ssrc) changed",
    )
    expect(
        _RX_RTCP_SSRC in _code_names(receiver_cls._send_rtcp_pli),
        "RTCRtpReceiver._send_rtcp_pli no longer checks __rtcp_ssrc",
    )
    expect(
        _params(JitterBuffer.__init__) == ["self", "capacity", "prefetch", "is_video"],
        "JitterBuffer(capacity, prefetch, is_video) changed",
    )
    expect(
        _params(JitterBuffer._remove_frame) == ["self", "sequence_number"],
        "JitterBuffer._remove_frame(sequence_number) changed",
    )
    expect(
        "_remove_frame" in _code_names(JitterBuffer.add),
        "JitterBuffer.add no longer calls _remove_frame",
    )
    probe = JitterBuffer(capacity=4, is_video=True)
    for name in ("_origin", "_packets", "_capacity", "_prefetch", "_is_video"):
        expect(hasattr(probe, name), f"JitterBuffer instances have no {name}")
    expect(
        _params(JitterFrame.__init__) == ["self", "data", "timestamp"],
        "JitterFrame(data, timestamp) changed",
    )
    expect(
        hasattr(aiortc.rtp.RtpPacket(), "marker"), "aiortc.rtp.RtpPacket has no marker attribute"
    )
    sender_cls = RTCRtpSender
    expect(_params(sender_cls._send_keyframe) == ["self"], "RTCRtpSender._send_keyframe() changed")
    expect(
        "_send_keyframe" in _code_names(sender_cls._handle_rtcp_packet),
        "RTCRtpSender._handle_rtcp_packet no longer calls self._send_keyframe on PLI/FIR",
    )
    expect(
        _params(sender_cls._handle_rtcp_packet) == ["self", "packet"],
        "RTCRtpSender._handle_rtcp_packet(packet) changed",
    )
    expect(
        {"unpack_remb_fci", "RTCP_PSFB_APP"} <= _code_names(sender_cls._handle_rtcp_packet),
        "RTCRtpSender._handle_rtcp_packet no longer reads REMB with unpack_remb_fci",
    )
    expect(
        "_handle_rtcp_packet"
        in _code_names(aiortc.rtcdtlstransport.RTCDtlsTransport._handle_rtcp_data),
        "RTCDtlsTransport._handle_rtcp_data no longer calls _handle_rtcp_packet",
    )
    expect("_ssrc" in _code_names(sender_cls.__init__), "RTCRtpSender no longer keeps _ssrc")
    expect(
        {"pack", "recv"} <= _code_names(sender_cls._next_encoded_frame),
        "RTCRtpSender._next_encoded_frame no longer packs pre-encoded packets",
    )
    for encoder in (h264.H264Encoder, vpx.Vp8Encoder, opus.OpusEncoder):
        expect(
            _params(encoder.pack) == ["self", "packet"],
            f"{encoder.__name__}.pack(packet) changed",
        )
    expect(
        _RX_SENDER_ENCODER in _code_names(sender_cls.__init__)
        and {_RX_SENDER_ENCODER, "get_encoder"} <= _code_names(sender_cls._next_encoded_frame),
        "RTCRtpSender no longer makes its __encoder with get_encoder only when it has none",
    )
    expect(
        {"_packetize", "_split_bitstream", "convert_timebase"}
        <= _code_names(h264.H264Encoder.pack),
        "H264Encoder.pack no longer packetizes with its static _split_bitstream and _packetize",
    )
    expect(
        callable(getattr(aiortc.clock, "current_ntp_time", None))
        and {"clock", "current_ntp_time"} <= _code_names(sender_cls._run_rtp),
        "RTCRtpSender._run_rtp no longer reads aiortc.clock.current_ntp_time",
    )
    expect(
        _params(aioice.ice.get_host_addresses) == ["use_ipv4", "use_ipv6"],
        "aioice.ice.get_host_addresses(use_ipv4, use_ipv6) changed",
    )
    expect(
        "get_host_addresses" in _code_names(aioice.ice.Connection.gather_candidates),
        "aioice Connection.gather_candidates no longer calls get_host_addresses",
    )
    return problems


def check_internals() -> None:
    """Raise :class:`RtcInternalsChanged` listing every internal that is not as expected."""
    problems = internals_problems()
    if problems:
        raise RtcInternalsChanged(
            "runtime/rtc.py patches aiortc internals that changed: " + "; ".join(problems)
        )


# --- loopback ICE ----------------------------------------------------------------------------


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return [LOOPBACK] if use_ipv4 else []


class loopback_ice(AbstractContextManager["loopback_ice"]):  # lower case: reads as a call
    """Make aioice gather 127.0.0.1 as its only host candidate, for loopback tests and the demo.

    Calling it applies the change for the rest of the process; used as ``with loopback_ice():``
    the stock address discovery comes back when the outermost block exits. Applying it twice
    changes nothing. Production never calls it: there, candidates are the box's and the hub's
    real addresses.
    """

    _depth = 0
    _original: Callable[[bool, bool], list[str]] | None = None

    def __init__(self) -> None:
        cls = type(self)
        if cls._original is None:
            check_internals()
            cls._original = aioice.ice.get_host_addresses
            setattr(aioice.ice, _HOST_ADDRESSES, _loopback_host_addresses)
        cls._depth += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cls = type(self)
        cls._depth -= 1
        if cls._depth == 0 and cls._original is not None:
            setattr(aioice.ice, _HOST_ADDRESSES, cls._original)
            cls._original = None


# --- low-latency jitter buffer ---------------------------------------------------------------


class LowLatencyJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, releasing a video frame as soon as it is complete: every packet
    from the frame's first (the buffer's origin) up to its marker-bit packet is in. A frame
    whose marker packet never comes is still released when the next frame's first packet
    arrives, as aiortc does. ``per_packet`` makes every packet a frame (Opus at a relay).

    Like aiortc's, ``add`` returns one frame per packet: when a retransmission completes
    several frames at once, the later ones follow with the next packets.
    """

    def __init__(
        self,
        capacity: int,
        prefetch: int = 0,
        is_video: bool = False,
        *,
        per_packet: bool = False,
    ) -> None:
        super().__init__(capacity=capacity, prefetch=prefetch, is_video=is_video)
        self._per_packet = per_packet

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if not (self._is_video or self._per_packet):
            return super()._remove_frame(sequence_number)  # audio: aiortc's prefetch
        assert self._origin is not None
        packets: list[Any] = []
        timestamp: int | None = None
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                return self._release(packets, timestamp, count)  # frame without a marker
            packets.append(packet)
            if packet.marker or self._per_packet:
                return self._release(packets, timestamp, count + 1)
        return None

    def _release(self, packets: list[Any], timestamp: int, count: int) -> JitterFrame:
        frame = JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)
        self.remove(count)
        return frame


def _low_latency_jitter_buffer(
    capacity: int, prefetch: int = 0, is_video: bool = False
) -> JitterBuffer:
    return LowLatencyJitterBuffer(capacity=capacity, prefetch=prefetch, is_video=is_video)


def install_low_latency() -> None:
    """Make every aiortc video receiver created from now on in this process release a frame on
    its marker-bit packet (see :class:`LowLatencyJitterBuffer`). Audio keeps aiortc's
    prefetch. Idempotent; raises :class:`RtcInternalsChanged` on another aiortc."""
    if low_latency_installed():
        return
    check_internals()
    setattr(aiortc.rtcrtpreceiver, _RECEIVER_JITTER_BUFFER, LowLatencyJitterBuffer)
    logger.info("aiortc %s video receivers release frames on their marker packet", AIORTC_VERSION)


def low_latency_installed() -> bool:
    """Whether :func:`install_low_latency` took effect in this process."""
    return getattr(aiortc.rtcrtpreceiver, _RECEIVER_JITTER_BUFFER) is LowLatencyJitterBuffer


# --- faster sending --------------------------------------------------------------------------

_NTP_EPOCH_OFFSET_NS = 2_208_988_800 * 1_000_000_000
"""From 1900-01-01 (NTP's epoch) to 1970-01-01, in nanoseconds."""


def fast_ntp_time() -> int:
    """The 64-bit NTP time now (32.32 fixed point), as ``aiortc.clock.current_ntp_time`` gives
    it, from ``time.time_ns()`` in integer arithmetic instead of ``datetime`` objects."""
    seconds, nanos = divmod(time.time_ns() + _NTP_EPOCH_OFFSET_NS, 1_000_000_000)
    return (seconds << 32) | ((nanos << 32) // 1_000_000_000)


def install_fast_clock() -> None:
    """Make aiortc read the NTP time with :func:`fast_ntp_time` (its senders read it twice per
    RTP packet: at a relay with many watchers, a few per cent of its CPU). Idempotent."""
    check_internals()
    aiortc.clock.current_ntp_time = fast_ntp_time


SHARED_PACKETS = 64
"""Packets whose RTP payloads :class:`SharedH264Packer` keeps (a few frames of every feed)."""


_PACKED: collections.OrderedDict[int, tuple[av.Packet[Any], tuple[list[bytes], int]]]
_PACKED = collections.OrderedDict()
"""id(packet) -> (packet, its payloads and timestamp), newest last, for every SharedH264Packer."""


class SharedH264Packer(h264.H264Encoder):
    """aiortc's H.264 packer for pre-encoded packets, whose instances share their work: every
    sender of one ``av.Packet`` object gets the payloads cut for the first. Packing H.264 is a
    pure function of the packet (``_split_bitstream`` and ``_packetize`` are static), unlike
    VP8's, which numbers pictures per sender; the payloads are only read by the senders."""

    def pack(self, packet: av.Packet[Any]) -> tuple[list[bytes], int]:
        recent = _PACKED
        hit = recent.get(id(packet))
        if hit is not None and hit[0] is packet:  # the packet is held, so its id is its own
            return hit[1]
        packed = super().pack(packet)
        recent[id(packet)] = (packet, packed)
        if len(recent) > SHARED_PACKETS:
            recent.popitem(last=False)
        return packed


def share_packetization(sender: RTCRtpSender) -> None:
    """Make ``sender``, which will send pre-encoded H.264 packets, pack them with a
    :class:`SharedH264Packer`. Call before the sender starts."""
    check_internals()
    if getattr(sender, _RX_SENDER_ENCODER) is not None:
        raise ValueError("share_packetization() must come before the sender starts")
    setattr(sender, _RX_SENDER_ENCODER, SharedH264Packer())


# --- encoded frames --------------------------------------------------------------------------


def h264_is_keyframe(access_unit: bytes) -> bool:
    """Whether an Annex B H.264 access unit holds an IDR slice (NAL unit type 5)."""
    i = access_unit.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(access_unit):
        if access_unit[i + 3] & 0x1F == 5:
            return True
        i = access_unit.find(b"\x00\x00\x01", i + 3)
    return False


def vp8_is_keyframe(frame: bytes) -> bool:
    """Whether a VP8 frame is a key frame (bit 0 of its first byte clear, RFC 6386 9.1)."""
    return len(frame) > 0 and frame[0] & 0x01 == 0


def is_keyframe(codec_name: str, data: bytes) -> bool:
    """Keyframe test for a depayloaded frame; every audio frame counts as one."""
    name = codec_name.lower()
    if name == "h264":
        return h264_is_keyframe(data)
    if name == "vp8":
        return vp8_is_keyframe(data)
    return True


@dataclass(frozen=True)
class EncodedFrame:
    """One depayloaded frame as it left a receiver's jitter buffer."""

    kind: Kind
    codec: str
    """Codec name as in SDP: ``H264``, ``VP8``, ``opus``."""
    clock_rate: int
    timestamp: int
    """RTP timestamp, counted from the stream's first frame, in ``clock_rate`` units."""
    data: bytes
    keyframe: bool
    received: float = field(default_factory=time.monotonic)

    def to_packet(self) -> av.Packet[Any]:
        """An ``av.Packet`` an :class:`EncodedTrack` can send (pts, time base, keyframe set)."""
        packet = av.Packet(self.data)
        packet.pts = self.timestamp
        packet.time_base = fractions.Fraction(1, self.clock_rate)
        packet.is_keyframe = self.keyframe
        return packet


class _DecoderQueueTap:
    """Stands in for a receiver's decoder queue: complete frames go to the sink (and to the
    decoder only when ``decode``); the decoder thread's stop signal passes through."""

    def __init__(
        self,
        inner: queue.Queue[Any],
        kind: Kind,
        sink: Callable[[EncodedFrame], None],
        decode: bool,
    ) -> None:
        self.inner = inner
        self._kind = kind
        self._sink = sink
        self._decode = decode

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            self.inner.put(None)
            return
        codec, frame = item
        try:
            self._sink(
                EncodedFrame(
                    kind=self._kind,
                    codec=codec.name,
                    clock_rate=codec.clockRate,
                    timestamp=frame.timestamp,
                    data=frame.data,
                    keyframe=is_keyframe(codec.name, frame.data),
                )
            )
        except Exception:
            logger.exception("encoded-frame sink of a %s receiver failed", self._kind)
        if self._decode:
            self.inner.put(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self.inner.get(block, timeout)


class EncodedTap:
    """Takes a receiver's complete encoded frames before its decoder and hands them to
    ``sink`` on the event loop; nothing is decoded unless ``decode``.

    Call it before the connection carries media (right after ``addTransceiver`` or
    ``setRemoteDescription``). The receiver's jitter buffer is replaced by a
    :class:`LowLatencyJitterBuffer` (video: released on the marker packet; audio: every packet
    at once, no prefetch), so a relay adds no frame interval.
    """

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        sink: Callable[[EncodedFrame], None],
        *,
        decode: bool = False,
    ) -> None:
        check_internals()
        self.receiver = receiver
        kind = getattr(receiver, _RX_KIND, None)
        old_buffer = getattr(receiver, _RX_JITTER_BUFFER, None)
        old_queue = getattr(receiver, _RX_DECODER_QUEUE, None)
        if kind not in ("audio", "video") or not isinstance(old_buffer, JitterBuffer):
            raise RtcInternalsChanged(
                f"RTCRtpReceiver has no usable __kind/__jitter_buffer (kind {kind!r})"
            )
        if isinstance(old_queue, _DecoderQueueTap):
            raise ValueError(f"this {kind} receiver is already tapped")
        if not isinstance(old_queue, queue.Queue):
            raise RtcInternalsChanged(
                f"RTCRtpReceiver.__decoder_queue is {type(old_queue).__name__}, not queue.Queue"
            )
        self.kind: Kind = kind
        buffer = LowLatencyJitterBuffer(
            capacity=old_buffer.capacity, is_video=kind == "video", per_packet=kind == "audio"
        )
        setattr(receiver, _RX_JITTER_BUFFER, buffer)
        setattr(receiver, _RX_DECODER_QUEUE, _DecoderQueueTap(old_queue, kind, sink, decode))

    def media_ssrcs(self) -> list[int]:
        """SSRCs the receiver heard from in the last 10 s."""
        return [source.source for source in self.receiver.getSynchronizationSources()]

    async def request_keyframe(self) -> bool:
        """Send a PLI upstream for every SSRC heard recently; ``False`` when none was sent
        (no media yet, or RTCP not set up)."""
        ssrcs = self.media_ssrcs()
        if not ssrcs or getattr(self.receiver, _RX_RTCP_SSRC, None) is None:
            return False
        for ssrc in ssrcs:
            await self.receiver._send_rtcp_pli(ssrc)
        return True


# --- pass-through sending --------------------------------------------------------------------


class EncodedTrack(MediaStreamTrack):
    """A track of pre-encoded ``av.Packet`` s (``pts``, ``time_base`` and ``is_keyframe`` set),
    which aiortc's sender packetizes without encoding.

    The owner :meth:`put` s packets; the queue holds at most ``max_queue`` of them. Until the
    sender first asks for media, and after an overflow, the track waits for a keyframe and
    drops everything else, asking the owner for one through ``on_keyframe_request(reason)``;
    so a slow peer skips to the next keyframe instead of growing memory and latency. Call
    :meth:`attach` with the sender so that the remote's PLI/FIR reach the owner too (aiortc's
    sender only flags its own encoder, which pre-encoded packets bypass).
    """

    def __init__(
        self,
        kind: Kind,
        *,
        max_queue: int = 15,
        on_keyframe_request: Callable[[KeyframeReason], None] | None = None,
    ) -> None:
        super().__init__()
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.kind = kind
        self.max_queue = max_queue
        self.on_keyframe_request = on_keyframe_request
        self._queue: collections.deque[av.Packet[Any]] = collections.deque()
        self._ready = asyncio.Event()
        self._started = False
        self._need_keyframe = True
        self.packets_in = 0
        self.packets_out = 0
        self.dropped = 0
        self.overflows = 0
        self.keyframe_requests = 0

    @property
    def waiting_for_keyframe(self) -> bool:
        """Whether non-key packets are being dropped until a keyframe comes."""
        return self._need_keyframe

    @property
    def queued(self) -> int:
        return len(self._queue)

    def attach(self, sender: RTCRtpSender) -> None:
        """Surface the keyframe requests (PLI/FIR) ``sender`` receives as ``"remote"``."""
        if sender.track is not self:
            raise ValueError("attach() takes the sender that sends this track")
        original = sender._send_keyframe
        if getattr(original, "_encoded_track", None) is not None:
            raise ValueError("this sender is already attached to an EncodedTrack")

        def send_keyframe() -> None:
            original()
            self._request_keyframe("remote")

        send_keyframe._encoded_track = self  # type: ignore[attr-defined]
        sender._send_keyframe = send_keyframe  # type: ignore[method-assign]

    def skip_to_keyframe(self) -> None:
        """Drop what is queued and everything up to the next keyframe (a new upstream)."""
        self.dropped += len(self._queue)
        self._queue.clear()
        self._need_keyframe = True

    def put(self, packet: av.Packet[Any]) -> bool:
        """Queue one packet for sending; ``False`` when it was dropped (not started, waiting
        for a keyframe, overflow, or ended)."""
        if self.readyState != "live":
            return False
        self.packets_in += 1
        if not self._started:
            self.dropped += 1
            return False
        if self._need_keyframe:
            if not packet.is_keyframe:
                self.dropped += 1
                return False
            self._need_keyframe = False
        if len(self._queue) >= self.max_queue:
            self.overflows += 1
            self.dropped += len(self._queue)
            self._queue.clear()
            if not packet.is_keyframe:
                self.dropped += 1
                self._need_keyframe = True
                self._request_keyframe("overflow")
                return False
        self._queue.append(packet)
        self._ready.set()
        return True

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started:
            self._started = True
            self._request_keyframe("start")
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
            if self.readyState != "live":
                raise MediaStreamError
        self.packets_out += 1
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        self._ready.set()

    def _request_keyframe(self, reason: KeyframeReason) -> None:
        self.keyframe_requests += 1
        if self.on_keyframe_request is not None:
            try:
                self.on_keyframe_request(reason)
            except Exception:
                logger.exception("keyframe request handler of a %s track failed", self.kind)
