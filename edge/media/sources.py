"""Where the box's pictures and sound come from: a synthetic pattern and tone (demo, tests) or
the camera (OpenCV/V4L2) and microphone (PyAV/ALSA).

Every source has the same shape: ``await next_frame()`` gives the next ``av.VideoFrame``
(``yuv420p``) or ``av.AudioFrame`` (``s16`` mono 48 kHz, 20 ms), with ``pts`` and ``time_base``
set, and ``await close()`` (safe twice) releases it. Synthetic sources are paced in real time
against an absolute schedule (frame *n* is due at ``start + n / fps``), so they never drift. Device
sources read in a worker thread and hand frames to the event loop; a missing or unplugged device
raises ``CameraUnavailable``/``MicrophoneUnavailable`` from ``next_frame`` with the device named,
keeps retrying in the background, and reports itself in ``state``/``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fractions
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import av
import cv2
import numpy as np
import numpy.typing as npt

from contracts import framestamp
from edge.media.config import MediaConfig
from edge.media.errors import CameraUnavailable, DeviceUnavailable, MicrophoneUnavailable

log = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_RATE = 48_000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)
AUDIO_PTIME = 0.020
AUDIO_SAMPLES = int(AUDIO_RATE * AUDIO_PTIME)
BEIJING = dt.timezone(dt.timedelta(hours=8))
#: A source this far behind its schedule skips ahead instead of bursting frames to catch up.
MAX_LAG = 0.5
#: Seconds between attempts to reopen a device that failed.
RETRY_SECONDS = 2.0

State = Literal["starting", "running", "unavailable", "closed"]


class VideoSource(Protocol):
    kind: Literal["video"]
    fps: int
    width: int
    height: int

    async def next_frame(self) -> av.VideoFrame: ...
    async def close(self) -> None: ...


class AudioSource(Protocol):
    kind: Literal["audio"]

    async def next_frame(self) -> av.AudioFrame: ...
    async def close(self) -> None: ...


class _Pacer:
    """Slots on an absolute monotonic schedule: ``await wait()`` returns the next slot's index
    when it is due. Slots lost to a long stall (more than ``MAX_LAG``) are skipped, not burst."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.start: float | None = None
        self.slot = -1

    async def wait(self) -> int:
        now = time.monotonic()
        if self.start is None:
            self.start = now
        self.slot += 1
        due = self.start + self.slot * self.interval
        if now - due > MAX_LAG:
            self.slot = math.floor((now - self.start) / self.interval)
            due = self.start + self.slot * self.interval
        if due > now:
            await asyncio.sleep(due - now)
        return self.slot


class _Synthetic:
    """What the synthetic sources share: real-time pacing, a frame count, closing."""

    def __init__(self, interval: float, name: str) -> None:
        self._name = name
        self._pacer = _Pacer(interval)
        self._closed = False
        self.frames = 0  # frames produced; the next frame's number

    async def _next_slot(self) -> int:
        """The next frame slot's index, when it is due."""
        if self._closed:
            raise DeviceUnavailable(f"{self._name} source is closed")
        return await self._pacer.wait()

    @property
    def state(self) -> State:
        return "closed" if self._closed else "running"

    async def close(self) -> None:
        self._closed = True


class SyntheticVideo(_Synthetic):
    """A moving pattern (scrolling chroma bars, a luma ramp, a bouncing block), the Beijing time
    and the frame number drawn, and a ``contracts.framestamp`` stamp (frame number + wall clock
    in ms) in the top row of every frame."""

    kind: Literal["video"] = "video"

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: int = 15,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        framestamp.block_size(width)  # raises for a picture too narrow for the stamp
        super().__init__(1 / fps, "synthetic video")
        self.width, self.height, self.fps = width, height, fps
        self._wall_clock = wall_clock
        ramp = np.linspace(16, 235, width, dtype=np.float32)
        self._ramp = np.tile(ramp.astype(np.uint8), (height, 1))
        bars = np.zeros((2, height // 2, width // 2), np.uint8)
        for i, (u, v) in enumerate(((90, 240), (54, 34), (240, 110), (166, 16), (16, 146))):
            x0, x1 = i * width // 10, (i + 1) * width // 10
            bars[0, :, x0:x1], bars[1, :, x0:x1] = u, v
        self._bars = bars

    @classmethod
    def from_config(cls, config: MediaConfig) -> SyntheticVideo:
        return cls(config.width, config.height, config.fps)

    def render(self, frame_no: int, clock_ms: int, when: float) -> av.VideoFrame:
        """The picture for ``frame_no`` (no pacing, no timestamps)."""
        w, h = self.width, self.height
        yuv = np.empty((h * 3 // 2, w), np.uint8)
        y = yuv[:h]
        u = yuv[h : h + h // 4].reshape(h // 2, w // 2)
        v = yuv[h + h // 4 :].reshape(h // 2, w // 2)
        y[:] = np.roll(self._ramp, frame_no * 4, axis=1)
        u[:], v[:] = np.roll(self._bars, frame_no * 2, axis=2)
        span = max(1, w - 120)
        x = abs((frame_no * 9) % (2 * span) - span)
        y[h // 3 : h // 3 + 80, x : x + 120] = 235 - (frame_no * 5) % 200
        text = dt.datetime.fromtimestamp(when, BEIJING).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        y[h - 80 :] = 16
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(y, text, (12, h - 46), font, 0.9, 235, 2, cv2.LINE_AA)
        cv2.putText(y, f"XFV frame {frame_no:06d}", (12, h - 12), font, 0.9, 235, 2, cv2.LINE_AA)
        framestamp.stamp_yuv420((y, u, v), frame_no, clock_ms)
        return av.VideoFrame.from_ndarray(yuv, format="yuv420p")

    async def next_frame(self) -> av.VideoFrame:
        slot = await self._next_slot()
        when = self._wall_clock()
        frame = self.render(self.frames, framestamp.clock_ms(when), when)
        frame.pts = round(slot * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self.frames += 1
        return frame


class SyntheticAudio(_Synthetic):
    """A 440 Hz tone at -12 dBFS, 48 kHz mono ``s16``, one 20 ms frame per call."""

    kind: Literal["audio"] = "audio"

    def __init__(self, frequency: float = 440.0, level: float = 0.25) -> None:
        super().__init__(AUDIO_PTIME, "synthetic audio")
        self.frequency, self.level = frequency, level

    async def next_frame(self) -> av.AudioFrame:
        slot = await self._next_slot()
        start = slot * AUDIO_SAMPLES
        t = (np.arange(start, start + AUDIO_SAMPLES) / AUDIO_RATE).astype(np.float64)
        wave = np.sin(2 * np.pi * self.frequency * t) * self.level * 32767
        frame = av.AudioFrame.from_ndarray(
            wave.astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = AUDIO_TIME_BASE
        self.frames += 1
        return frame


class _ThreadedSource:
    """A device read by a worker thread that hands frames to the event loop through a small
    queue (the oldest frame is dropped when the consumer is slow, as a camera would). A device
    that fails is reported and reopened every ``RETRY_SECONDS`` until ``close``."""

    error_type: type[DeviceUnavailable] = DeviceUnavailable
    what = "device"

    def __init__(self, device: str) -> None:
        self.device = device
        self.state: State = "starting"
        self.error: str | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failed = asyncio.Event()
        self._start_time = time.monotonic()

    # the worker's side -------------------------------------------------------------------
    def _open(self) -> Any:
        raise NotImplementedError

    def _read(self, handle: Any) -> list[av.VideoFrame] | list[av.AudioFrame]:
        """Frames from the device; raises ``DeviceUnavailable`` when it stops giving any."""
        raise NotImplementedError

    def _release(self, handle: Any) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    handle = self._open()
                except DeviceUnavailable as exc:
                    self._report(str(exc))
                    self._stop.wait(RETRY_SECONDS)
                    continue
                try:
                    self._set_running()
                    while not self._stop.is_set():
                        for frame in self._read(handle):
                            self._deliver(frame)
                except DeviceUnavailable as exc:
                    self._report(str(exc))
                    self._stop.wait(RETRY_SECONDS)
                finally:
                    self._release(handle)
        except Exception:
            log.exception("%s %s: worker failed", self.what, self.device)
            self._report(f"{self.what} {self.device!r} failed unexpectedly (see the log)")
        finally:
            log.debug("%s %s: worker exited", self.what, self.device)

    def _call(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(fn)

    def _report(self, message: str) -> None:
        if self.error != message:
            log.warning("%s unavailable: %s", self.what, message)

        def apply() -> None:
            self.state, self.error = "unavailable", message
            self._failed.set()

        self._call(apply)

    def _set_running(self) -> None:
        def apply() -> None:
            if self.state != "running":
                log.info("%s %s is running", self.what, self.device)
            self.state, self.error = "running", None
            self._failed.clear()

        self._call(apply)

    def _deliver(self, frame: Any) -> None:
        def put() -> None:
            queue = self._queue
            if queue is None:
                return
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(frame)

        self._call(put)

    # the event loop's side ---------------------------------------------------------------
    def start(self) -> None:
        """Start the worker (``next_frame`` does this on first use)."""
        if self._thread is not None or self.state == "closed":
            return
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=2)
        self._thread = threading.Thread(
            target=self._run, name=f"{self.what} {self.device}", daemon=True
        )
        self._thread.start()

    async def next_frame(self) -> Any:
        if self.state == "closed":
            raise self.error_type(f"{self.what} {self.device!r} is closed")
        self.start()
        assert self._queue is not None
        if self._queue.empty() and self.state == "unavailable":
            raise self.error_type(self.error or f"{self.what} {self.device!r} is unavailable")
        get = asyncio.ensure_future(self._queue.get())
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait({get, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            if not get.done():
                get.cancel()
        if get.done() and not get.cancelled():
            return get.result()
        raise self.error_type(self.error or f"{self.what} {self.device!r} is unavailable")

    async def close(self) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)


class CameraVideo(_ThreadedSource):
    """A V4L2 camera read through ``cv2.VideoCapture``; frames are scaled to the configured size
    and timestamped by the box's monotonic clock when read."""

    kind: Literal["video"] = "video"
    error_type = CameraUnavailable
    what = "camera"

    def __init__(self, device: str, width: int = 640, height: int = 480, fps: int = 15) -> None:
        super().__init__(device)
        self.width, self.height, self.fps = width, height, fps
        self.frames = 0

    @classmethod
    def from_config(cls, config: MediaConfig) -> CameraVideo:
        return cls(config.device, config.width, config.height, config.fps)

    def _open(self) -> Any:
        capture = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not capture.isOpened():
            capture.release()
            raise CameraUnavailable(f"cannot open camera {self.device!r}")
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        capture.set(cv2.CAP_PROP_FPS, self.fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture

    def _read(self, handle: Any) -> list[av.VideoFrame]:
        ok, image = handle.read()
        if not ok or image is None:
            raise CameraUnavailable(f"camera {self.device!r} gave no picture (unplugged?)")
        when = time.monotonic() - self._start_time
        pixels: npt.NDArray[np.uint8] = image
        if pixels.shape[1] != self.width or pixels.shape[0] != self.height:
            size = (self.width, self.height)
            pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)  # type: ignore[assignment]
        frame = av.VideoFrame.from_ndarray(pixels, format="bgr24").reformat(format="yuv420p")
        frame.pts = round(when * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        self.frames += 1
        return [frame]

    def _release(self, handle: Any) -> None:
        handle.release()


class MicrophoneAudio(_ThreadedSource):
    """An ALSA capture device read through PyAV (``av.open(device, format="alsa")``), resampled
    to 48 kHz mono ``s16`` in 20 ms frames with continuous sample timestamps."""

    kind: Literal["audio"] = "audio"
    error_type = MicrophoneUnavailable
    what = "microphone"

    def __init__(self, device: str = "default") -> None:
        super().__init__(device)
        self._samples = 0
        self.frames = 0

    def _open(self) -> Any:
        try:
            container = av.open(
                self.device, format="alsa", options={"sample_rate": "48000", "channels": "1"}
            )
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MicrophoneUnavailable(f"cannot open microphone {self.device!r}: {exc}") from None
        resampler = av.AudioResampler(
            format="s16", layout="mono", rate=AUDIO_RATE, frame_size=AUDIO_SAMPLES
        )
        return container, container.demux(audio=0), resampler

    def _read(self, handle: Any) -> list[av.AudioFrame]:
        _, packets, resampler = handle
        try:
            packet = next(packets)
            decoded = packet.decode()
        except (StopIteration, av.FFmpegError, OSError) as exc:
            raise MicrophoneUnavailable(
                f"microphone {self.device!r} stopped giving sound: {exc or 'end of stream'}"
            ) from None
        out: list[av.AudioFrame] = []
        for raw in decoded:
            for frame in resampler.resample(raw):
                frame.pts = self._samples
                frame.time_base = AUDIO_TIME_BASE
                self._samples += frame.samples
                out.append(frame)
        self.frames += len(out)
        return out

    def _release(self, handle: Any) -> None:
        handle[0].close()


def open_video(config: MediaConfig) -> SyntheticVideo | CameraVideo:
    """The configured camera (``device``): the synthetic pattern or a V4L2 device."""
    if config.device == "synthetic":
        return SyntheticVideo.from_config(config)
    return CameraVideo.from_config(config)


def open_audio(config: MediaConfig) -> SyntheticAudio | MicrophoneAudio:
    """The configured microphone (``audio_device``): a synthetic tone or an ALSA device."""
    if config.audio_device == "synthetic":
        return SyntheticAudio()
    return MicrophoneAudio(config.audio_device)
