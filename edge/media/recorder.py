"""The session recording on the box: its own camera and microphone and the official's picture
and sound, in one file that survives a crash.

Container: MPEG transport stream (``.ts``), chosen because it is the one format made for being
cut off anywhere. It is a sequence of self-synchronising 188-byte packets with no header to
finish, no index and no trailer, so a file that ends mid-write plays up to its last whole packet;
and H.264 travels in it as the Annex B stream our encoder emits (SPS/PPS in-band on every
keyframe), so the box's encoded packets are muxed as they are, never encoded twice. Matroska and
fragmented MP4 need the codec configuration in a header written up front: FFmpeg/PyAV then hold
every packet back until each video stream has delivered its first one, which, with an official
who never turns the camera on, is forever. Audio is AAC (FFmpeg's native encoder), the usual
companion of H.264 in MPEG-TS, which the hub can remux to MP4 for browsers without re-encoding.
VP8 does not go into MPEG-TS: video given as frames (the official's picture, as aiortc's
receiver delivers it; the box's camera when the box publishes VP8) is encoded here with libx264
at ``recording_video_bitrate``. Such a frame is copied when it is queued: the caller's frame
goes on to other encoders and sinks, and encoding sets a frame's timestamp and picture type.

Crash safety: the muxer's interleaving buffer is capped at ``MAX_INTERLEAVE`` (FFmpeg's default is
10 s and would wait for a silent stream), and every packet is written straight through to the
file (``flush_packets``, unbuffered file) so a kill -9 loses at most the packets in flight; an
fsync every ``fsync_seconds`` covers a power cut too. A file is written as ``<name>.ts.part`` and
renamed to ``<name>.ts`` when closed cleanly; a ``.part`` found at start-up was left by a crash
and is given to ``recover``, which checks it plays and returns its duration and SHA-256.

Timestamps: each input keeps its own spacing (a 20 ms audio frame stays 20 ms) and is placed on
the recording's clock where its first item arrived; an input that jumps by more than
``REANCHOR`` (a paused sender, a restarted source) is placed again by arrival time.

Threads: ``write_*`` only queue (bounded; items are dropped and counted when the disk cannot keep
up); one writer thread encodes what needs encoding, muxes and writes.
"""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import av

from edge.media.config import MediaConfig
from edge.media.encoder import Packet, VideoEncoder
from edge.media.errors import RecordingError

log = logging.getLogger(__name__)

Input = Literal["local_video", "local_audio", "remote_video", "remote_audio"]
INPUTS: tuple[Input, ...] = ("local_video", "local_audio", "remote_video", "remote_audio")
TS_TIME_BASE = fractions.Fraction(1, 90_000)
AUDIO_RATE = 48_000
SUFFIX = ".ts"
PART = ".part"
#: Longest the muxer may hold packets back to interleave streams, microseconds.
MAX_INTERLEAVE = 300_000
#: An input whose timeline strays this far (seconds) from arrival time is placed again.
REANCHOR = 1.0
#: Seconds past ``segment_seconds`` to wait for a keyframe of the box's video before rolling over.
ROLL_GRACE = 5.0
QUEUE_ITEMS = 1000
CHUNK = 1 << 20


@dataclass(frozen=True)
class RecordedFile:
    """A finished (or recovered) recording file."""

    path: Path
    sha256: str
    duration: float  # seconds from the first to the end of the last media packet
    size: int


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def inspect(path: Path) -> RecordedFile:
    """Check that the recording at ``path`` plays and measure it: every packet is demuxed, and
    the last group of pictures (or, without video, the last audio packets) is decoded. Raises
    ``RecordingError`` naming the file when it does not play."""
    start: float | None = None
    end: float | None = None
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            if video is None and audio is None:
                raise RecordingError(f"recording {str(path)!r} has no audio or video stream")
            tail: list[Packet | None] = []
            tail_stream = video or audio
            for packet in container.demux():
                if packet.pts is None or packet.time_base is None:
                    continue
                t0 = float(packet.pts * packet.time_base)
                t1 = t0 + float((packet.duration or 0) * packet.time_base)
                start = t0 if start is None else min(start, t0)
                end = t1 if end is None else max(end, t1)
                if packet.stream is tail_stream:
                    if packet.is_keyframe and video is not None:
                        tail = []
                    tail.append(packet)
                    if video is None:
                        tail = tail[-50:]
            assert tail_stream is not None
            decoder: Any = av.CodecContext.create(tail_stream.codec_context.name, "r")
            if tail_stream.codec_context.extradata:
                decoder.extradata = tail_stream.codec_context.extradata
            decoded = 0
            for item in [*tail, None]:
                try:
                    decoded += len(decoder.decode(item))
                except av.FFmpegError:
                    continue
    except av.FFmpegError as exc:
        raise RecordingError(f"recording {str(path)!r} does not open: {exc}") from None
    if start is None or end is None or decoded == 0:
        raise RecordingError(f"recording {str(path)!r} holds no decodable media")
    return RecordedFile(path, sha256_file(path), end - start, path.stat().st_size)


def unfinished(directory: Path) -> list[Path]:
    """Recording files a crash left in ``directory`` (still named ``*.ts.part``)."""
    return sorted(directory.glob(f"*{SUFFIX}{PART}")) if directory.is_dir() else []


def recover(path: Path) -> RecordedFile:
    """A file left by a crash: check it plays, rename it from ``.ts.part`` to ``.ts`` and
    return its duration and SHA-256. Raises ``RecordingError`` when it does not play (the file
    is left where it is, for a human to look at)."""
    found = inspect(path)
    if path.name.endswith(PART):
        final = path.with_name(path.name.removesuffix(PART))
        path.replace(final)
        found = RecordedFile(final, found.sha256, found.duration, found.size)
    log.info(
        "recovered recording %s: %.1f s, sha256 %s", found.path.name, found.duration, found.sha256
    )
    return found


class _Timeline:
    """Places one input's timestamps on the recording's clock (seconds since start)."""

    def __init__(self) -> None:
        self.offset: float | None = None
        self.last = -1.0

    def place(self, own: float | None, arrival: float) -> float:
        if own is None:
            t = arrival
        else:
            if self.offset is None or abs(own + self.offset - arrival) > REANCHOR:
                self.offset = arrival - own
            t = own + self.offset
        t = max(t, self.last + 1 / 90_000)
        self.last = t
        return t


class _Segment:
    """One ``.ts`` file being written."""

    def __init__(self, path: Path, config: MediaConfig, start: float) -> None:
        self.path, self.start = path, start
        self.part = path.with_name(path.name + PART)
        self.file: BinaryIO = self.part.open("xb", buffering=0)
        self.container = av.open(
            self.file,
            "w",
            format="mpegts",
            container_options={"max_interleave_delta": str(MAX_INTERLEAVE)},
        )
        self.container.flags |= cast(int, av.container.Flags.flush_packets.value)
        self.streams: dict[Input, Any] = {}
        for name in INPUTS:
            if name.endswith("video"):
                self.streams[name] = self.container.add_mux_stream(
                    "h264", rate=config.fps, width=config.width, height=config.height
                )
            else:
                stream = self.container.add_stream("aac", rate=AUDIO_RATE)
                stream.layout = "mono"
                stream.bit_rate = config.audio_bitrate
                self.streams[name] = stream
        self.last_fsync = time.monotonic()

    def close(self) -> None:
        for name, stream in self.streams.items():
            if name.endswith("audio") and stream.codec_context.is_open:
                try:
                    self.container.mux(stream.encode(None))
                except av.FFmpegError as exc:
                    log.warning("recording %s: flushing %s failed: %s", self.path.name, name, exc)
        self.container.close()
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.part.replace(self.path)


_STOP = object()


def _copy_frame(frame: av.VideoFrame) -> av.VideoFrame:
    """A yuv420p copy of ``frame`` (same ``pts`` and ``time_base``) that only the writer
    thread touches. (``reformat`` to the frame's own format returns the frame itself.)"""
    if frame.format.name == "yuv420p":
        copy = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
    else:
        copy = frame.reformat(format="yuv420p")
    copy.pts, copy.time_base = frame.pts, frame.time_base
    return copy


class Recorder:
    """Records one session into ``directory/<name>-NNN.ts`` (a new file every
    ``segment_seconds``).

    Feed it with ``write_local_video`` (the box's encoded H.264 packets, or frames when the box
    publishes VP8),
    ``write_local_audio`` (the microphone's frames), ``write_remote_video`` (the official's
    decoded frames, or H.264 packets) and ``write_remote_audio`` (decoded frames). ``close``
    returns every file written, each with its SHA-256 and duration; ``on_file`` is called (on
    the event loop) as each file is finished, for the hash chain. ``request_keyframe`` is called
    when a new file is about to start, so that it starts with a picture.
    """

    def __init__(
        self,
        directory: Path,
        name: str,
        config: MediaConfig | None = None,
        *,
        on_file: Callable[[RecordedFile], None] | None = None,
        request_keyframe: Callable[[], None] | None = None,
    ) -> None:
        if not name or "/" in name or name.startswith("."):
            raise RecordingError(f"a recording name must be a plain file name, got {name!r}")
        self.directory, self.name = directory, name
        self.config = config or MediaConfig()
        self.on_file, self.request_keyframe = on_file, request_keyframe
        self.files: list[RecordedFile] = []
        self.dropped = 0
        self.written = dict.fromkeys(INPUTS, 0)
        self.error: str | None = None
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_ITEMS)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._closed = False
        self._result: list[RecordedFile] | None = None
        self._timelines = {name: _Timeline() for name in INPUTS}
        self._encoders: dict[Input, VideoEncoder] = {}
        self._segment: _Segment | None = None
        self._index = 0
        self._roll_requested = False
        self._last_drop_log = 0.0

    async def __aenter__(self) -> Recorder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def started_at(self) -> float:
        """``time.monotonic()`` when the recording started."""
        return self._t0

    async def start(self) -> None:
        """Open the first file and start the writer thread."""
        if self._thread is not None or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._t0 = time.monotonic()
        self._segment = await asyncio.to_thread(self._open_segment, 0.0)
        self._thread = threading.Thread(target=self._run, name=f"recorder {self.name}", daemon=True)
        self._thread.start()

    # the callers' side (any thread) ----------------------------------------------------
    def _put(self, name: Input, item: Packet | av.VideoFrame | av.AudioFrame) -> None:
        if self._closed or self._thread is None:
            return
        if isinstance(item, av.Packet):
            copy = av.Packet(bytes(item))
            copy.pts, copy.dts, copy.time_base = item.pts, item.dts, item.time_base
            copy.is_keyframe = item.is_keyframe
            item = copy
        elif isinstance(item, av.VideoFrame):
            item = _copy_frame(item)
        try:
            self._queue.put_nowait((name, item, time.monotonic() - self._t0))
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 10:
                self._last_drop_log = now
                log.warning(
                    "recording %s: writer behind, %d items dropped", self.name, self.dropped
                )

    def write_local_video(self, item: Packet | av.VideoFrame) -> None:
        """The box's camera: H.264 Annex B packets from ``VideoEncoder`` (muxed as they are),
        or frames (encoded here)."""
        self._put("local_video", item)

    def write_local_audio(self, frame: av.AudioFrame) -> None:
        self._put("local_audio", frame)

    def write_remote_video(self, item: av.VideoFrame | Packet) -> None:
        """The official's picture: decoded frames (encoded here), or H.264 Annex B packets."""
        self._put("remote_video", item)

    def write_remote_audio(self, frame: av.AudioFrame) -> None:
        self._put("remote_audio", frame)

    # the writer thread -------------------------------------------------------------------
    def _open_segment(self, start: float) -> _Segment:
        self._index += 1
        path = self.directory / f"{self.name}-{self._index:03d}{SUFFIX}"
        try:
            segment = _Segment(path, self.config, start)
        except (OSError, av.FFmpegError) as exc:
            raise RecordingError(f"cannot create recording {str(path)!r}: {exc}") from exc
        log.info("recording %s started", path.name)
        return segment

    def _finish_segment(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        segment.close()
        try:
            done = inspect(segment.path)
        except RecordingError as exc:
            log.warning("recording %s: %s", self.name, exc)
            done = RecordedFile(
                segment.path, sha256_file(segment.path), 0.0, segment.path.stat().st_size
            )
        self.files.append(done)
        log.info(
            "recording %s closed: %.1f s, sha256 %s", done.path.name, done.duration, done.sha256
        )
        if self.on_file is not None and self._loop is not None:
            callback = self.on_file
            self._loop.call_soon_threadsafe(callback, done)

    def _maybe_roll(self, name: Input, item: Any, arrival: float) -> None:
        segment = self._segment
        assert segment is not None
        age = arrival - segment.start
        if age < self.config.segment_seconds:
            return
        # a frame of the box's camera: encoded here, and every encoder here starts the new
        # file with a keyframe; a packet: wait (up to ROLL_GRACE) for the box's next keyframe
        keyframe = name == "local_video" and (
            isinstance(item, av.VideoFrame) or (isinstance(item, av.Packet) and item.is_keyframe)
        )
        if not (keyframe or age >= self.config.segment_seconds + ROLL_GRACE):
            if not self._roll_requested:
                self._roll_requested = True
                if self.request_keyframe is not None and self._loop is not None:
                    self._loop.call_soon_threadsafe(self.request_keyframe)
            return
        self._roll_requested = False
        self._finish_segment()
        self._segment = self._open_segment(arrival)
        for encoder in self._encoders.values():
            encoder.request_keyframe()

    def _encoder(self, name: Input) -> VideoEncoder:
        encoder = self._encoders.get(name)
        if encoder is None:
            c = self.config
            bitrate = c.recording_video_bitrate
            encoder = VideoEncoder(
                "libx264",
                width=c.width,
                height=c.height,
                fps=c.fps,
                bitrate=bitrate,
                bitrate_min=bitrate,
                bitrate_max=max(bitrate, c.bitrate_max),
                keyframe_interval=c.keyframe_interval,
            )
            self._encoders[name] = encoder
        return encoder

    def _write(self, name: Input, item: Any, arrival: float) -> None:
        self._maybe_roll(name, item, arrival)
        segment = self._segment
        assert segment is not None
        stream = segment.streams[name]
        timeline = self._timelines[name]
        if isinstance(item, av.VideoFrame):
            packets = self._encoder(name).encode(item)
        elif isinstance(item, av.AudioFrame):
            seconds = (
                None if item.pts is None or item.time_base is None else item.pts * item.time_base
            )
            t = timeline.place(None if seconds is None else float(seconds), arrival) - segment.start
            item.pts = max(0, round(t * AUDIO_RATE))
            item.time_base = fractions.Fraction(1, AUDIO_RATE)
            segment.container.mux(stream.encode(item))
            self.written[name] += 1
            return
        else:
            packets = [item]
        for packet in packets:
            own = (
                None
                if packet.pts is None or packet.time_base is None
                else float(packet.pts * packet.time_base)
            )
            t = timeline.place(own, arrival) - segment.start
            packet.pts = packet.dts = max(0, round(t / TS_TIME_BASE))
            packet.time_base = TS_TIME_BASE
            packet.stream = stream
            segment.container.mux(packet)
            self.written[name] += 1

    def _fsync(self) -> None:
        segment = self._segment
        if segment is None or not self.config.fsync_seconds:
            return
        now = time.monotonic()
        if now - segment.last_fsync >= self.config.fsync_seconds:
            segment.last_fsync = now
            os.fsync(segment.file.fileno())

    def _run(self) -> None:
        try:
            while True:
                try:
                    entry = self._queue.get(timeout=0.5)
                except queue.Empty:
                    self._fsync()
                    continue
                if entry is _STOP:
                    break
                name, item, arrival = entry
                try:
                    self._write(name, item, arrival)
                except (av.FFmpegError, ValueError) as exc:
                    log.warning("recording %s: dropped a %s item: %s", self.name, name, exc)
                self._fsync()
        except Exception as exc:
            self.error = f"recording {self.name!r} failed: {exc}"
            log.exception("recording %s: writer failed", self.name)
        finally:
            try:
                self._finish_segment()
            except Exception as exc:
                self.error = self.error or f"recording {self.name!r} could not be closed: {exc}"
                log.exception("recording %s: closing failed", self.name)
            for encoder in self._encoders.values():
                encoder.close()

    async def close(self) -> list[RecordedFile]:
        """Finish the file and return every file of this recording; safe to call twice."""
        if self._result is not None:
            return self._result
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(self._queue.put, _STOP)
            await asyncio.to_thread(thread.join)
        self._result = list(self.files)
        if self.error:
            raise RecordingError(self.error)
        return self._result
