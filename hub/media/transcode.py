"""The relay's fallback for watchers whose browser cannot decode the publisher's video codec.

The box publishes one stream (a township uplink carries one well and two badly), in the codec the
official's browser decodes. A monitor, or a second official, whose browser decodes only VP8 would
otherwise get nothing from an H.264 box. For them the relay runs a :class:`TranscodedFeed`: one per
(source feed, target codec), shared by every such watcher, which decodes the source's encoded
frames once and encodes them once more in the target codec (VP8: libvpx realtime; H.264: libx264
ultrafast/zerolatency), then hands each packet to its watchers' :class:`~runtime.rtc.EncodedTrack`
s exactly as a pass-through feed does. Audio (Opus) is never transcoded.

Decoding and encoding run on one worker thread per transcoded feed, never on the event loop. Frames
wait in a bounded queue (:data:`QUEUE_FRAMES`): when the worker falls behind, the queue is
dropped and so is everything up to the source's next keyframe (counted in ``dropped``), so latency
never grows.

Keyframes: the decoder can start only at a source keyframe, so until it has decoded one (and again
after a drop or a decoding error) a watcher's keyframe request goes upstream through the source
feed's throttled :class:`~hub.media.keyframes.KeyframeRequester`. Once it decodes, a new watcher or
a watcher's PLI/FIR only makes the next *output* frame a keyframe (at most one such a
:data:`FORCED_KEYFRAME_INTERVAL`): the box is not asked. A source keyframe also gives an output
keyframe, so the watchers' keyframe rhythm is the box's.

The encoder's bitrate follows the source's (measured over the last 10 s by :class:`RateMeter`),
within :data:`MIN_BITRATE` .. :data:`MAX_BITRATE`; it is rebuilt (a keyframe) only when the source
moves by half and at most every :data:`REBUILD_INTERVAL` seconds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import av
from av.video.frame import PictureType

from runtime.encoding import low_latency_encoder
from runtime.rtc import EncodedFrame, EncodedTrack, KeyframeReason, is_keyframe

if TYPE_CHECKING:
    Packet = av.Packet[Any]
else:
    Packet = av.Packet

logger = logging.getLogger(__name__)

TARGETS = ("VP8", "H264")
"""Video codecs (SDP names) the relay can transcode to, most preferred first."""
DECODERS = {"H264": "h264", "VP8": "vp8"}
"""FFmpeg decoder per source codec."""
QUEUE_FRAMES = 6
"""Source frames waiting for the worker before it is cut back to the next keyframe (0.4 s at 15
fps; the worker needs about 13 ms a frame at 640x480 and 470 kbps)."""
DEFAULT_BITRATE = 500_000
MIN_BITRATE = 100_000
MAX_BITRATE = 2_000_000
REBUILD_CHANGE = 0.5
"""The encoder follows the source's bitrate only when it moved by this fraction ..."""
REBUILD_INTERVAL = 10.0
"""... and at most once in this many seconds (a rebuild starts with a keyframe)."""
FORCED_KEYFRAME_INTERVAL = 0.5
"""Seconds; watchers' keyframe requests make at most one output keyframe in this time (a request
within it waits for its end), so one lossy watcher cannot turn every frame into a keyframe for
all the others. Short, so that a watcher joining just after another still sees a picture at
once."""
GOP_FRAMES = 3000
"""Keyframes come from the source's keyframes and the watchers' requests; this is a ceiling."""
METER_WINDOW = 10.0
"""Seconds over which the source's bitrate is measured: long enough to hold two of the box's
keyframes (one every 5 s), which carry a large part of its bits."""


class RateMeter:
    """Bits per second of what passed through it in the last :data:`METER_WINDOW` seconds
    (event-loop side only)."""

    def __init__(self, window: float = METER_WINDOW) -> None:
        self.window = window
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._bytes = 0

    def add(self, nbytes: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._samples.append((now, nbytes))
        self._bytes += nbytes
        while self._samples and now - self._samples[0][0] > self.window:
            self._bytes -= self._samples.popleft()[1]

    def bps(self) -> int | None:
        """The rate, or ``None`` before half a second of samples."""
        if len(self._samples) < 2:
            return None
        span = self._samples[-1][0] - self._samples[0][0]
        if span < 0.5:
            return None
        return int((self._bytes - self._samples[-1][1]) * 8 / span)


@dataclass(frozen=True)
class TranscodeStats:
    session_id: str
    participant_id: str
    source_codec: str
    target_codec: str
    subscribers: int
    frames_in: int
    """source frames handed to the transcoder"""
    decoded: int
    frames_out: int
    """encoded frames handed to the subscribers' tracks"""
    keyframes_out: int
    bytes_out: int
    dropped: int
    """source frames never decoded: queue overflows and the frames up to the next keyframe"""
    overflows: int
    errors: int
    """frames the decoder or encoder failed on"""
    queued: int
    bitrate: int
    """the encoder's target, bits/s (0 before it is opened)"""
    running: bool
    """whether the worker thread is alive"""


def _encoder(target: str, width: int, height: int, bitrate: int) -> av.VideoCodecContext:
    """A low-latency encoder for ``target`` (``VP8`` or ``H264``), pts in 1/90000."""
    name = "libvpx" if target == "VP8" else "libx264"
    ctx = low_latency_encoder(name, width, height, 15, bitrate, GOP_FRAMES)
    ctx.thread_count = 1  # one transcoder per worker thread: x264's threads would only contend
    ctx.open()
    return ctx


class TranscodedFeed:
    """One source feed's video in another codec, for every subscriber that needs that codec.

    Event-loop side: :meth:`put` (source frames), :meth:`add`/:meth:`remove` (subscribers'
    tracks), :meth:`on_keyframe_request` (their requests), :meth:`skip_to_keyframe` (a new
    upstream), :meth:`close`. The worker thread starts in the constructor, so build it on the
    event loop.
    """

    def __init__(
        self,
        *,
        session_id: str,
        participant_id: str,
        source_codec: str,
        target_codec: str,
        want_upstream_keyframe: Callable[[], None],
        source_bitrate: Callable[[], int | None] = lambda: None,
        max_queue: int = QUEUE_FRAMES,
    ) -> None:
        source_codec, target_codec = source_codec.upper(), target_codec.upper()
        if source_codec not in DECODERS or target_codec not in TARGETS:
            raise ValueError(f"cannot transcode {source_codec!r} to {target_codec!r}")
        self.session_id = session_id
        self.participant_id = participant_id
        self.source_codec = source_codec
        self.target_codec = target_codec
        self.name = f"{session_id}/{participant_id} {source_codec}->{target_codec}"
        self.tracks: set[EncodedTrack] = set()
        self._want_upstream = want_upstream_keyframe
        self._source_bitrate = source_bitrate
        self._max_queue = max_queue
        self._loop = asyncio.get_running_loop()
        # shared with the worker, under _cond
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[EncodedFrame, int]] = collections.deque()
        self._stop = False
        self._force_keyframe = False
        self._source_bps = self._clamp(source_bitrate())
        # event-loop side
        self._skipping = True  # the decoder starts at a source keyframe
        self._decoding = False  # it decoded a frame since it last (re)started
        self._closed = False
        self._done: asyncio.Future[None] = self._loop.create_future()
        self.frames_in = 0
        self.frames_out = 0
        self.keyframes_out = 0
        self.bytes_out = 0
        self.dropped = 0
        self.overflows = 0
        # worker side (read from the loop, written by the worker only)
        self.decoded = 0
        self.errors = 0
        self.bitrate = 0
        self._decoder: av.VideoCodecContext | None = None
        self._encoder: av.VideoCodecContext | None = None
        self._built = 0.0
        self._next_forced = 0.0
        self.thread = threading.Thread(target=self._work, name=f"transcode {self.name}")
        self.thread.start()
        self._want_upstream()

    # --- event-loop side -----------------------------------------------------------------

    def stats(self) -> TranscodeStats:
        return TranscodeStats(
            session_id=self.session_id,
            participant_id=self.participant_id,
            source_codec=self.source_codec,
            target_codec=self.target_codec,
            subscribers=len(self.tracks),
            frames_in=self.frames_in,
            decoded=self.decoded,
            frames_out=self.frames_out,
            keyframes_out=self.keyframes_out,
            bytes_out=self.bytes_out,
            dropped=self.dropped,
            overflows=self.overflows,
            errors=self.errors,
            queued=len(self._queue),
            bitrate=self.bitrate,
            running=self.thread.is_alive(),
        )

    def add(self, track: EncodedTrack) -> None:
        """Send to ``track`` from now on; its first frame will be a keyframe."""
        if self._closed:
            track.stop()
            return
        self.tracks.add(track)
        self.on_keyframe_request("start")

    def remove(self, track: EncodedTrack) -> bool:
        """Stop sending to ``track`` (and stop it); ``True`` when no track is left."""
        self.tracks.discard(track)
        track.stop()
        return not self.tracks

    def on_keyframe_request(self, reason: KeyframeReason) -> None:
        """A subscriber needs a keyframe: the next output frame is one; the source is asked
        only while nothing can be decoded."""
        with self._cond:
            self._force_keyframe = True
        if not self._decoding:
            self._want_upstream()

    def put(self, frame: EncodedFrame, timestamp: int) -> None:
        """One source frame, ``timestamp`` its (rebased) RTP time."""
        if self._closed:
            return
        self.frames_in += 1
        if self.frames_in % 16 == 0 and (bps := self._source_bitrate()) is not None:
            self._source_bps = self._clamp(bps)  # read by the worker when it (re)builds
        want = False
        with self._cond:
            if self._skipping:
                if not frame.keyframe:
                    self.dropped += 1
                    return
                self._skipping = False
            if len(self._queue) >= self._max_queue:
                self.overflows += 1
                self.dropped += len(self._queue)
                self._queue.clear()
                if not frame.keyframe:
                    self.dropped += 1
                    self._skipping = True
                    self._decoding = False
                    want = True
            if not self._skipping:
                self._queue.append((frame, timestamp))
                self._cond.notify()
        if want:
            if self.overflows == 1 or self.overflows % 50 == 0:
                logger.warning(
                    "%s: the worker fell behind (%d times so far); skipping to the next keyframe",
                    self.name,
                    self.overflows,
                )
            self._want_upstream()

    def skip_to_keyframe(self) -> None:
        """Drop what waits and everything up to the source's next keyframe (a new upstream, or
        a frame the worker could not decode)."""
        with self._cond:
            self.dropped += len(self._queue)
            self._queue.clear()
            self._skipping = True
            self._decoding = False
        self._want_upstream()

    async def close(self) -> None:
        """Stop the worker (its decoder and encoder are freed) and the subscribers' tracks; safe
        to call twice and from several tasks."""
        if not self._closed:
            self._closed = True
            for track in self.tracks:
                track.stop()
            self.tracks.clear()
            with self._cond:
                self._stop = True
                self._queue.clear()
                self._cond.notify()
        await asyncio.shield(self._done)
        self.thread.join(timeout=1.0)  # it returns right after resolving _done

    def _deliver(self, packets: list[Packet], decoded: bool) -> None:
        if self._closed:
            return
        if decoded and not self._skipping:
            self._decoding = True
        for packet in packets:
            self.frames_out += 1
            self.bytes_out += packet.size
            if packet.is_keyframe:
                self.keyframes_out += 1
            for track in self.tracks:
                track.put(packet)

    def _failed(self) -> None:
        if not self._closed:
            self.skip_to_keyframe()

    def _finished(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    def _clamp(self, bps: int | None) -> int:
        return max(MIN_BITRATE, min(MAX_BITRATE, bps or DEFAULT_BITRATE))

    # --- worker thread -------------------------------------------------------------------

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
            self._loop.call_soon_threadsafe(callback, *args)

    def _work(self) -> None:
        try:
            decoder = av.CodecContext.create(DECODERS[self.source_codec], "r")
            assert isinstance(decoder, av.VideoCodecContext)
            decoder.thread_count = 1
            self._decoder = decoder
            while True:
                with self._cond:
                    while not self._queue and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                    frame, timestamp = self._queue.popleft()
                try:
                    packets, decoded = self._transcode(frame, timestamp)
                except Exception as exc:
                    self.errors += 1
                    if self.errors <= 3 or self.errors % 100 == 0:
                        logger.warning(
                            "%s: frame %d failed (%d so far): %r",
                            self.name,
                            timestamp,
                            self.errors,
                            exc,
                        )
                    self._call(self._failed)
                    continue
                self._call(self._deliver, packets, decoded)
        except Exception:
            logger.exception("%s: the transcoder's worker failed", self.name)
        finally:
            self._decoder = None
            self._encoder = None
            self._call(self._finished)

    def _transcode(self, frame: EncodedFrame, timestamp: int) -> tuple[list[Packet], bool]:
        """The target codec's packets for one source frame, and whether it decoded."""
        decoder = self._decoder
        assert decoder is not None
        time_base = fractions.Fraction(1, frame.clock_rate)
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = timestamp
        packet.time_base = time_base
        out: list[Packet] = []
        decoded = False
        for picture in decoder.decode(packet):
            assert isinstance(picture, av.VideoFrame)
            self.decoded += 1
            decoded = True
            now = time.monotonic()
            with self._cond:
                forced = self._force_keyframe and now >= self._next_forced
                keyframe = forced or frame.keyframe
                if keyframe:
                    self._force_keyframe = False  # a source keyframe serves pending requests
            if forced:
                self._next_forced = now + FORCED_KEYFRAME_INTERVAL
            encoder = self._encoder_for(picture)
            image = (
                picture if picture.format.name == "yuv420p" else picture.reformat(format="yuv420p")
            )
            pts = timestamp if picture.pts is None else picture.pts
            image.pts, image.time_base = pts, time_base
            image.pict_type = PictureType.I if keyframe else PictureType.NONE
            for encoded in encoder.encode(image):
                encoded.pts = encoded.dts = pts
                encoded.time_base = time_base
                encoded.is_keyframe = is_keyframe(self.target_codec, bytes(encoded))
                out.append(encoded)
        return out, decoded

    def _encoder_for(self, picture: av.VideoFrame) -> av.VideoCodecContext:
        """The encoder for ``picture``'s size, (re)built on the first picture, a new size, or
        a source bitrate far from the encoder's."""
        encoder = self._encoder
        target = self._source_bps
        now = time.monotonic()
        rebuild = encoder is None or (encoder.width, encoder.height) != (
            picture.width,
            picture.height,
        )
        if (
            not rebuild
            and abs(target - self.bitrate) > REBUILD_CHANGE * self.bitrate
            and now - self._built >= REBUILD_INTERVAL
        ):
            logger.info("%s: source moved to %d bps; rebuilding the encoder", self.name, target)
            rebuild = True
        if encoder is None or rebuild:
            self._encoder = encoder = _encoder(
                self.target_codec, picture.width, picture.height, target
            )
            self.bitrate, self._built = target, now
        return encoder
