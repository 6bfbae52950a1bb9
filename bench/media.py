"""Live video at 640x480, 15 fps, on loopback: latency, relay cost per watcher, call setup and
the box's CPU, each beside a baseline measured in the same run. (bench/README.md has the table.)

(1) Glass-to-glass latency p50/p95. The publisher is the box's pipeline (``SyntheticVideo``,
    whose frames carry a ``contracts.framestamp`` stamp of the wall clock in ms taken as the
    frame is drawn; ``VideoEncoder`` libx264 at 500 kbps; a pre-encoded ``EncodedTrack``); the
    subscriber decodes with aiortc and reads the stamp. Three calls, one after the other, in
    this process: a direct call with aiortc's *stock* jitter buffer (first, before
    ``install_low_latency`` is called, which is checked), then ``install_low_latency`` and a
    direct call, then a call through ``hub.media.Relay`` (in this process too). Target: p50
    <= 25 ms through the relay.
(2) Relay CPU per added watcher. The relay runs in a worker process (its CPU read with psutil
    over a window) and gets a 500 kbps H.264 stream from this process, which also holds N
    watchers (N = 0, 1, 4, 8, 16; quick 0, 4, 16); the watchers take encoded frames from their
    receivers and decode nothing, so that this process stays light. Beside it, in another
    worker: aiortc's ``MediaRelay`` (decodes once, re-encodes with aiortc's H.264 encoder for
    every watcher), N = 0, 1, 4, 8 (quick 0, 2; 16 of them saturate two cores). Per-watcher cost
    is the least-squares slope of CPU (cores) over the *effective* watchers (frames received per
    second / 15: N while the relay keeps up). Targets: pass-through <= 1/20 of ``MediaRelay``'s
    slope; >= 200 watchers per core (1 / slope).
(3) Accept -> first decoded frame: from a new subscriber's ``createOffer`` to its first decoded
    frame through the relay, the publisher already streaming (keyframes every 5 s, so the
    relay's keyframe request must reach the box's encoder). Target <= 500 ms.
(4) Box CPU during a call, in a box worker: first the encoder alone on pre-rendered frames at
    15 fps, then a call (the same encoder + ``EncodedTrack`` + aiortc's sender to the relay
    worker, with the box's ``install_fast_clock`` + ``Recorder`` muxing the same packets to a
    ``.ts`` file). The sending side only:
    the official's picture is not received. Target <= 1.3x.

    python bench/media.py            # 20 s windows, 8 joins (~6 min)
    python bench/media.py --quick    # short windows, under 60 s

Progress goes to stderr; stdout gets a table and, last, one JSON line of the figures. The
workers are this script run with ``--worker``; they talk JSON lines on stdin/stdout, ignore
SIGINT, stop when asked or when their stdin closes, and are terminated, then killed, when they
do not: Ctrl-C or SIGTERM stops the whole benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).parents[1]))

import av
import numpy as np
import psutil
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole, MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from contracts import framestamp
from edge.media.config import MediaConfig
from edge.media.encoder import Packet, VideoEncoder
from edge.media.recorder import Recorder
from edge.media.sources import VIDEO_TIME_BASE, SyntheticVideo
from hub.media import Relay, RelayConfig
from runtime.rtc import (
    EncodedFrame,
    EncodedTap,
    EncodedTrack,
    install_fast_clock,
    install_low_latency,
    loopback_ice,
    low_latency_installed,
    rtc_configuration,
)

logger = logging.getLogger("bench.media")

WIDTH, HEIGHT, FPS, BITRATE = 640, 480, 15, 500_000
NOISE = 2.0
"""Standard deviation of the grain added to the looped pictures' luma (8-bit levels)."""
SESSION, BOX = "bench", "box"
TIMEOUT = 30.0
LATENCY_TARGET_MS, ACCEPT_TARGET_MS, RATIO_TARGET, PER_CORE_TARGET, BOX_TARGET = (
    25,
    500,
    0.05,
    200,
    1.3,
)


@dataclass(frozen=True)
class Plan:
    latency_s: float
    warmup_s: float
    joins: int
    window_s: float
    settle_s: float
    watchers: tuple[int, ...]
    baseline_watchers: tuple[int, ...]
    box_s: float


FULL = Plan(20, 2, 8, 20, 2, (0, 1, 4, 8, 16), (0, 1, 4, 8), 20)
QUICK = Plan(2, 0.5, 3, 1.5, 1.0, (0, 4, 16), (0, 2), 2)


STARTED = time.monotonic()


def stderr(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.1f} s] {message}", file=sys.stderr, flush=True)


def h264_preferences(rtx: bool = True) -> list[RTCRtpCodecCapability]:
    codecs = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in codecs if c.mimeType == "video/H264" or (rtx and c.mimeType == "video/rtx")]


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ranked = sorted(values)
    return ranked[max(0, math.ceil(p * len(ranked)) - 1)]


async def within(awaitable: Awaitable[Any], seconds: float, what: str) -> Any:
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}") from None


# --- the box's side ------------------------------------------------------------------------


class Source(Protocol):
    async def next_frame(self) -> av.VideoFrame: ...


@functools.cache
def looped_frames(count: int = 2 * FPS, noise: float = NOISE) -> list[av.VideoFrame]:
    drawer = SyntheticVideo(WIDTH, HEIGHT, FPS)
    rng = np.random.default_rng(4)
    now = time.time()
    frames = []
    for i in range(count):
        yuv = drawer.render(i, framestamp.clock_ms(now), now).to_ndarray()
        grain = rng.normal(0, noise, (HEIGHT, WIDTH))
        yuv[:HEIGHT] = np.clip(yuv[:HEIGHT] + grain, 0, 255).astype(np.uint8)
        frames.append(av.VideoFrame.from_ndarray(yuv, format="yuv420p"))
    return frames


class LoopedVideo:
    """Pre-rendered ``SyntheticVideo`` pictures with camera-like noise (so that libx264 spends
    its 500 kbps, as on a real camera, instead of coasting on flat areas), cycled at 15 fps on
    an absolute schedule: the same frames in every process that measures CPU, and no drawing
    cost in the window."""

    def __init__(self) -> None:
        self.frames = looped_frames()
        self.sent = 0
        self.start: float | None = None

    async def next_frame(self) -> av.VideoFrame:
        if self.start is None:
            self.start = time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.sent / FPS - time.monotonic()))
        frame = self.frames[self.sent % len(self.frames)]
        frame.pts, frame.time_base = round(self.sent * 90_000 / FPS), VIDEO_TIME_BASE
        self.sent += 1
        return frame


class Pump:
    """Source -> ``VideoEncoder`` (in a worker thread, as on the box) -> sinks."""

    def __init__(self, source: Source, sinks: list[Callable[[Packet], object]]) -> None:
        self.source, self.sinks = source, sinks
        self.encoder = VideoEncoder("libx264", width=WIDTH, height=HEIGHT, fps=FPS, bitrate=BITRATE)
        self.frames = self.bytes = 0
        self.last_keyframe = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bench pump")

    async def _run(self) -> None:
        while True:
            frame = await self.source.next_frame()
            for packet in await asyncio.to_thread(self.encoder.encode, frame):
                self.bytes += packet.size
                if packet.is_keyframe:
                    self.last_keyframe = time.monotonic()
                for sink in self.sinks:
                    sink(packet)
            self.frames += 1

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.encoder.close()


class Publisher:
    """The box on a peer connection: pumped packets into an ``EncodedTrack``; keyframe
    requests (the sender's start, PLI/FIR from the far end) reach the encoder."""

    def __init__(
        self, source: Source, extra_sinks: tuple[Callable[[Packet], object], ...] = ()
    ) -> None:
        self.pc = RTCPeerConnection(rtc_configuration())
        self.track = EncodedTrack("video", max_queue=30, on_keyframe_request=self._keyframe)
        transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        transceiver.setCodecPreferences(h264_preferences(rtx=False))
        self.track.attach(transceiver.sender)
        self.pump = Pump(source, [self.track.put, *extra_sinks])

    def _keyframe(self, reason: object) -> None:
        self.pump.encoder.request_keyframe()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self.pump.start()

    async def close(self) -> None:
        await self.pump.close()
        await self.pc.close()


async def sending(publisher: Publisher, what: str) -> None:
    """Until the publisher's sender has taken its first packet (the call is up)."""
    deadline = time.monotonic() + TIMEOUT
    # EncodedTrack counts packets but has no event for the first one
    while publisher.track.packets_out == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {TIMEOUT:.0f} s waiting for {what} to send")
        await asyncio.sleep(0.02)


# --- subscribers ---------------------------------------------------------------------------


def stamp_of(frame: av.VideoFrame) -> tuple[int, int] | None:
    """The ``framestamp`` of a decoded picture, read from its luma plane's top rows."""
    plane = frame.planes[0]
    rows = framestamp.block_size(frame.width)
    top = np.frombuffer(memoryview(plane), np.uint8, count=plane.line_size * rows)
    return framestamp.read(top.reshape(rows, plane.line_size)[:, : frame.width])


class Viewer:
    """Decodes one video track with aiortc and records, per frame, its number and its age
    (receive wall clock minus the stamped one, ms)."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(rtc_configuration())
        self.samples: list[tuple[float, int, int]] = []  # (monotonic arrival, frame no, age)
        self.unreadable = 0
        self.first_frame = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.create_task(self._read(track), name="bench viewer"))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.time()
                assert isinstance(frame, av.VideoFrame)
                stamp = stamp_of(frame)
                if stamp is None:
                    self.unreadable += 1
                    continue
                age = framestamp.age_ms(stamp[1], framestamp.clock_ms(now))
                self.samples.append((time.monotonic(), stamp[0], age))
                self.first_frame.set()

    async def offer(self) -> str:
        self.pc.addTransceiver("video", direction="recvonly").setCodecPreferences(
            h264_preferences()
        )
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Watcher:
    """A watcher that counts the encoded frames its receiver completes and decodes nothing."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(rtc_configuration())
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        transceiver.setCodecPreferences(h264_preferences())
        self.frames = self.bytes = 0
        self.first_frame = asyncio.Event()
        self.tap = EncodedTap(transceiver.receiver, self._on_frame)

    def _on_frame(self, frame: EncodedFrame) -> None:
        self.frames += 1
        self.bytes += len(frame.data)
        self.first_frame.set()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()


# --- workers (this script with --worker) ----------------------------------------------------


class Handler(Protocol):
    async def handle(self, op: str, msg: dict[str, Any]) -> dict[str, Any]: ...
    async def close(self) -> None: ...


def emit(reply: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


async def serve(handler: Handler) -> None:
    """Answer JSON-line requests from stdin until ``stop`` or end of input, then close."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit({"ready": True, "pid": os.getpid()})
    try:
        while line := await reader.readline():
            msg = json.loads(line)
            if msg["op"] == "stop":
                break
            try:
                emit({"ok": True, **await handler.handle(msg["op"], msg)})
            except Exception as exc:
                logger.exception("worker: %s failed", msg["op"])
                emit({"error": f"{msg['op']} failed: {exc!r}"})
    finally:
        await handler.close()


class PassRelay:
    """``hub.media.Relay``, driven over stdin."""

    def __init__(self) -> None:
        self.relay = Relay(RelayConfig())
        self.started = False

    async def handle(self, op: str, msg: dict[str, Any]) -> dict[str, Any]:
        if op == "publish":
            if not self.started:
                await self.relay.start()
                self.started = True
            return {"sdp": await self.relay.publish(msg["session"], BOX, msg["sdp"])}
        if op == "subscribe":
            return {"sdp": await self.relay.subscribe(SESSION, msg["id"], BOX, msg["sdp"])}
        if op == "leave":
            await self.relay.leave(SESSION, msg["id"])
            return {}
        raise ValueError(f"unknown op {op!r}")

    async def close(self) -> None:
        await self.relay.stop()


class StockRelay:
    """aiortc's ``MediaRelay``: the upstream is decoded once (a blackhole reads it, so its queue
    stays empty), and every watcher's sender re-encodes it with aiortc's H.264 encoder."""

    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.blackhole = MediaBlackhole()
        self.upstream: RTCPeerConnection | None = None
        self.source: MediaStreamTrack | None = None
        self.watchers: dict[str, RTCPeerConnection] = {}

    async def handle(self, op: str, msg: dict[str, Any]) -> dict[str, Any]:
        if op == "publish":
            self.upstream = pc = RTCPeerConnection(rtc_configuration())
            pc.on("track", self._on_track)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            return {"sdp": pc.localDescription.sdp}
        if op == "subscribe":
            if self.source is None:
                raise ValueError("nothing is published")
            pc = self.watchers[msg["id"]] = RTCPeerConnection(rtc_configuration())
            await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="offer"))
            pc.addTrack(self.relay.subscribe(self.source))
            await pc.setLocalDescription(await pc.createAnswer())
            return {"sdp": pc.localDescription.sdp}
        if op == "leave":
            watcher = self.watchers.pop(msg["id"], None)
            if watcher is not None:
                await watcher.close()
            return {}
        raise ValueError(f"unknown op {op!r}")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and self.source is None:
            self.source = track
            self.blackhole.addTrack(self.relay.subscribe(track))
            asyncio.ensure_future(self.blackhole.start())  # noqa: RUF006 - start() only spawns

    async def close(self) -> None:
        await self.blackhole.stop()
        pcs = [*self.watchers.values(), *([self.upstream] if self.upstream else [])]
        self.watchers.clear()
        await asyncio.gather(*(pc.close() for pc in pcs))


class Box:
    """The box's video path in process CPU over a window: first the encoder alone (``raw``),
    then a call (``offer``, ``answer`` from the relay, ``measure``): the same encoder, aiortc's
    sender and the recorder muxing the same packets to a ``.ts`` file."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="xfv-bench-box-"))
        self.recorder: Recorder | None = None
        self.publisher: Publisher | None = None
        self.pump: Pump | None = None

    async def handle(self, op: str, msg: dict[str, Any]) -> dict[str, Any]:
        if op == "raw":
            pump = self.pump = Pump(LoopedVideo(), [])
            pump.start()
            try:
                return await self._measure(msg["seconds"], msg["warmup"])
            finally:
                self.pump = None
                await pump.close()
        if op == "offer":
            self.recorder = Recorder(self.workdir, "bench", MediaConfig())
            await self.recorder.start()
            self.publisher = Publisher(LoopedVideo(), (self.recorder.write_local_video,))
            return {"sdp": await self.publisher.offer()}
        if op == "answer":
            assert self.publisher is not None
            await self.publisher.accept(msg["sdp"])
            self.pump = self.publisher.pump
            await sending(self.publisher, "the box's call")
            return {}
        if op == "measure":
            return await self._measure(msg["seconds"], msg["warmup"])
        raise ValueError(f"unknown op {op!r}")

    async def _measure(self, seconds: float, warmup: float) -> dict[str, Any]:
        await asyncio.sleep(warmup)
        before = self._counts()
        cpu, start = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu, time.monotonic() - start
        after = self._counts()
        return {"cpu_s": cpu, "wall_s": wall, **{k: after[k] - before[k] for k in after}}

    def _counts(self) -> dict[str, int]:
        assert self.pump is not None
        counts = {"frames": self.pump.frames, "bytes": self.pump.bytes}
        if self.publisher is not None:
            counts["packets_sent"] = self.publisher.track.packets_out
        if self.recorder is not None:
            counts["recorded"] = self.recorder.written["local_video"]
        return counts

    async def close(self) -> None:
        if self.publisher is not None:
            await self.publisher.close()
        if self.recorder is not None:
            await self.recorder.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


async def worker_main(kind: str, mode: str) -> None:
    handlers: dict[str, Callable[[], Handler]] = {
        "pass": PassRelay,
        "mediarelay": StockRelay,
        "box": Box,
    }
    handler = handlers[mode if kind == "relay" else kind]()
    if kind == "box":
        install_fast_clock()  # as the box's LiveService does (the relay's start does too)
    with loopback_ice():
        await serve(handler)


# --- (1) and (3), in this process -------------------------------------------------------------


async def latency(plan: Plan) -> dict[str, Any]:
    """The stock call first, before ``install_low_latency`` (which changes every receiver made
    afterwards in this process, and cannot be undone), then the low-latency ones."""
    if low_latency_installed():
        raise RuntimeError("low latency is installed already: the stock call would not be stock")
    result: dict[str, Any] = {"stock": await direct_call(plan)}
    stderr(f"  stock: {summary(result['stock'])}")
    install_low_latency()
    result["direct"] = await direct_call(plan)
    stderr(f"  direct: {summary(result['direct'])}")
    async with Relay(RelayConfig()) as relay:
        publisher = Publisher(SyntheticVideo(WIDTH, HEIGHT, FPS))
        try:
            await publisher.accept(await relay.publish(SESSION, BOX, await publisher.offer()))
            viewer = Viewer()
            try:
                offer = await viewer.offer()
                await viewer.accept(await relay.subscribe(SESSION, "official", BOX, offer))
                result["relay"] = await measure_latency(viewer, plan)
            finally:
                await viewer.close()
                await relay.leave(SESSION, "official")
            stderr(f"  relay: {summary(result['relay'])}")
            result["accept_ms"] = [await join(relay, f"late-{i}") for i in range(plan.joins)]
        finally:
            await publisher.close()
    return result


def summary(r: dict[str, Any]) -> str:
    ages = r["ages"]
    return (
        f"p50 {pct(ages, 0.5)} ms, p95 {pct(ages, 0.95)} ms over {len(ages)} frames "
        f"({r['lost']} lost, {r['unreadable']} unreadable)"
    )


async def direct_call(plan: Plan) -> dict[str, Any]:
    publisher, viewer = Publisher(SyntheticVideo(WIDTH, HEIGHT, FPS)), Viewer()
    try:
        await publisher.accept(await viewer.answer(await publisher.offer()))
        return await measure_latency(viewer, plan)
    finally:
        await asyncio.gather(viewer.close(), publisher.close())


async def measure_latency(viewer: Viewer, plan: Plan) -> dict[str, Any]:
    await within(viewer.first_frame.wait(), TIMEOUT, "the first decoded frame")
    start = time.monotonic() + plan.warmup_s
    await asyncio.sleep(plan.warmup_s + plan.latency_s)
    kept = [(n, age) for t, n, age in viewer.samples if t >= start]
    numbers = [n for n, _ in kept]
    span = (numbers[-1] - numbers[0]) % 65536 + 1 if numbers else 0
    return {
        "ages": [age for _, age in kept],
        "frames": len(kept),
        "lost": span - len(kept),
        "unreadable": viewer.unreadable,
    }


async def join(relay: Relay, name: str) -> float:
    """Milliseconds from a new subscriber's ``createOffer`` to its first decoded frame."""
    await asyncio.sleep(1.2)  # past the relay's keyframe throttle (1 request a second)
    viewer = Viewer()
    try:
        start = time.monotonic()
        await viewer.accept(await relay.subscribe(SESSION, name, BOX, await viewer.offer()))
        await within(viewer.first_frame.wait(), TIMEOUT, f"{name}'s first frame")
        return (viewer.samples[0][0] - start) * 1000
    finally:
        await viewer.close()
        await relay.leave(SESSION, name)


# --- the orchestrator ------------------------------------------------------------------------


class Worker:
    """This script as a child process, one request at a time."""

    def __init__(self, kind: str, mode: str = "") -> None:
        self.name = f"{kind} {mode}".strip()
        self.args = ["--worker", kind, "--mode", mode]
        self.proc: asyncio.subprocess.Process | None = None
        self.pid = 0

    async def start(self) -> Worker:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        return self

    async def _reply(self, wait_s: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await within(self.proc.stdout.readline(), wait_s, f"the {self.name} worker")
        if not line:
            raise RuntimeError(f"the {self.name} worker exited (code {await self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the {self.name} worker: {reply['error']}")
        return reply

    async def ready(self) -> None:
        self.pid = (await self._reply(60))["pid"]

    async def call(self, op: str, wait_s: float = TIMEOUT, **args: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._reply(wait_s)

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return float(psutil.Process(self.pid).memory_info().rss / 1e6)

    async def close(self) -> None:
        """Ask it to stop; terminate, then kill, when it does not. Safe to call twice."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert proc.stdin is not None
            proc.stdin.write(b'{"op": "stop"}\n')
            proc.stdin.close()
        for step in (proc.terminate, proc.kill):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
                return
            with contextlib.suppress(ProcessLookupError):
                step()
        await proc.wait()


class MachineCpu:
    """Share of the machine's CPU (all cores) busy between ``__init__`` and ``busy()``."""

    def __init__(self) -> None:
        self.start = psutil.cpu_times()

    def busy(self) -> float:
        end = psutil.cpu_times()
        total = sum(end) - sum(self.start)
        idle = (end.idle + end.iowait) - (self.start.idle + self.start.iowait)
        return 1 - idle / total if total > 0 else math.nan


async def relay_cost(relay: Worker, counts: tuple[int, ...], plan: Plan) -> dict[str, Any]:
    """Relay CPU (cores) with each number of watchers, adding watchers as it goes. The cost
    per watcher is the slope of CPU over *effective* watchers (frames the watchers received
    per second / 15): the same as over N while the relay keeps up, and still the cost of a
    watcher at full rate when it does not (``MediaRelay`` on a busy machine)."""
    publisher = Publisher(LoopedVideo())
    watchers: list[Watcher] = []
    cores, rss, slowest, effective, kbps = [], [], [], [], []
    machine = MachineCpu()
    try:
        reply = await relay.call("publish", session=SESSION, sdp=await publisher.offer())
        await publisher.accept(reply["sdp"])
        await sending(publisher, f"the stream to the {relay.name} relay")
        for n in counts:
            joining = [Watcher() for _ in range(n - len(watchers))]
            offers = await asyncio.gather(*(w.offer() for w in joining))
            answers = []
            for watcher, offer in zip(joining, offers, strict=True):
                watchers.append(watcher)
                reply = await relay.call("subscribe", id=f"w{len(watchers)}", sdp=offer)
                answers.append(reply["sdp"])
            await asyncio.gather(*(w.accept(a) for w, a in zip(joining, answers, strict=True)))
            waiting = [w.first_frame.wait() for w in watchers]
            await within(asyncio.gather(*waiting), TIMEOUT, f"{n} watchers' first frames")
            await quiet(publisher, plan.settle_s)
            frames0, bytes0 = [w.frames for w in watchers], publisher.pump.bytes
            received0 = sum(w.bytes for w in watchers)
            cpu0, start, own0 = relay.cpu_seconds(), time.monotonic(), time.process_time()
            await asyncio.sleep(plan.window_s)
            cpu1, wall = relay.cpu_seconds(), time.monotonic() - start
            own = (time.process_time() - own0) / wall
            received = (sum(w.bytes for w in watchers) - received0) * 8 / wall / 1000
            cores.append((cpu1 - cpu0) / wall)
            rss.append(relay.rss_mb())
            kbps.append((publisher.pump.bytes - bytes0) * 8 / wall / 1000)
            got = [(w.frames - f0) / wall for w, f0 in zip(watchers, frames0, strict=True)]
            slowest.append(min(got) if got else math.nan)
            effective.append(sum(got) / FPS)
            stderr(
                f"  {relay.name}: {n:2d} watchers ({effective[-1]:4.1f} effective)  "
                f"{cores[-1]:.3f} core  {rss[-1]:.0f} MB  slowest watcher {slowest[-1]:.1f} fps"
                f"  stream {kbps[-1]:.0f} kbps, {received:.0f} kbps to watchers  "
                f"(bench process {own:.2f} core)"
            )
    finally:
        for i in range(len(watchers)):
            with contextlib.suppress(Exception):
                await relay.call("leave", 5, id=f"w{i + 1}")
        await asyncio.gather(*(w.close() for w in watchers), publisher.close())
    return {
        "watchers": list(counts),
        "effective_watchers": [round(e, 2) for e in effective],
        "cores": [round(c, 4) for c in cores],
        "rss_mb": [round(m) for m in rss],
        "slowest_watcher_fps": [round(f, 1) for f in slowest],
        "stream_kbps": round(statistics.median(kbps)),
        "core_per_watcher": statistics.linear_regression(effective, cores).slope,
        "machine_busy": machine.busy(),
    }


async def quiet(publisher: Publisher, seconds: float) -> None:
    """Wait ``seconds``, and on until the keyframes the joins asked for are over (none for
    1.2 s: the relay asks at most once a second, and retries once), at most 5 s more."""
    await asyncio.sleep(seconds)
    for _ in range(50):
        if time.monotonic() - publisher.pump.last_keyframe >= 1.2:
            return
        await asyncio.sleep(0.1)


async def box_cost(box: Worker, relay: Worker, plan: Plan) -> dict[str, Any]:
    wait_s = plan.box_s + plan.settle_s + TIMEOUT
    results = {"raw": await box.call("raw", wait_s, seconds=plan.box_s, warmup=plan.settle_s)}
    offer = (await box.call("offer"))["sdp"]
    answer = (await relay.call("publish", session="box-cpu", sdp=offer))["sdp"]
    await box.call("answer", sdp=answer)
    results["call"] = await box.call("measure", wait_s, seconds=plan.box_s, warmup=plan.settle_s)
    for name, r in results.items():
        stderr(
            f"  box {name}: {r['cpu_s'] / r['frames'] * 1e3:.2f} ms CPU per frame over "
            f"{r['frames']} frames ({r['bytes'] * 8 / r['wall_s'] / 1000:.0f} kbps)"
            + (f", {r['packets_sent']} sent, {r['recorded']} recorded" if name == "call" else "")
        )
    return results


async def orchestrate(plan: Plan, quick: bool) -> dict[str, Any]:
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    workers = {
        "pass": Worker("relay", "pass"),
        "stock": Worker("relay", "mediarelay"),
        "box": Worker("box"),
    }
    figures: dict[str, Any] = {"quick": quick, "width": WIDTH, "height": HEIGHT, "fps": FPS}
    try:
        stderr("starting the workers")
        for w in workers.values():
            await w.start()
        await asyncio.gather(*(w.ready() for w in workers.values()))
        with loopback_ice():
            stderr("(1) latency: stock direct, low-latency direct, through the relay")
            busy = MachineCpu()
            lat = await latency(plan)
            figures["latency_machine_busy"] = round(busy.busy(), 2)
            accept = ", ".join(f"{a:.0f}" for a in lat["accept_ms"])
            stderr(f"(3) accept -> first frame: {accept} ms")
            stderr("(2) relay CPU per watcher")
            passing = await relay_cost(workers["pass"], plan.watchers, plan)
            stock = await relay_cost(workers["stock"], plan.baseline_watchers, plan)
            await workers["stock"].close()
            stderr("(4) box CPU: encoder alone, then a call")
            box = await box_cost(workers["box"], workers["pass"], plan)
    finally:
        await asyncio.gather(*(w.close() for w in workers.values()), return_exceptions=True)
    return {**figures, **summarise(plan, lat, passing, stock, box)}


def summarise(
    plan: Plan,
    lat: dict[str, Any],
    passing: dict[str, Any],
    stock: dict[str, Any],
    box: dict[str, Any],
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    accept = lat["accept_ms"]
    for mode in ("stock", "direct", "relay"):
        ages = lat[mode]["ages"]
        figures[f"latency_{mode}_p50_ms"] = pct(ages, 0.5)
        figures[f"latency_{mode}_p95_ms"] = pct(ages, 0.95)
        figures[f"latency_{mode}_frames"] = lat[mode]["frames"]
        figures[f"latency_{mode}_lost"] = lat[mode]["lost"]
    figures["latency_target_ms"] = LATENCY_TARGET_MS
    figures["accept_ms_p50"] = round(statistics.median(accept), 1)
    figures["accept_ms_max"] = round(max(accept), 1)
    figures["accept_joins"] = len(accept)
    figures["accept_target_ms"] = ACCEPT_TARGET_MS
    for name, r in (("pass", passing), ("mediarelay", stock)):
        for key in ("watchers", "effective_watchers", "cores", "rss_mb", "slowest_watcher_fps"):
            figures[f"{name}_{key}"] = r[key]
        figures[f"{name}_stream_kbps"] = r["stream_kbps"]
        figures[f"{name}_core_per_watcher"] = round(r["core_per_watcher"], 5)
        figures[f"{name}_machine_busy"] = round(r["machine_busy"], 2)
    slope = passing["core_per_watcher"]
    figures["per_watcher_ratio"] = round(slope / stock["core_per_watcher"], 4)
    figures["per_watcher_ratio_target"] = RATIO_TARGET
    figures["watchers_per_core"] = round(1 / slope) if slope > 0 else math.inf
    figures["watchers_per_core_target"] = PER_CORE_TARGET
    figures["window_s"] = plan.window_s
    for name in ("raw", "call"):
        figures[f"box_{name}_cpu_ms_per_frame"] = round(
            box[name]["cpu_s"] / box[name]["frames"] * 1e3, 3
        )
    figures["box_kbps"] = round(box["call"]["bytes"] * 8 / box["call"]["wall_s"] / 1000)
    figures["box_call_sent_packets"] = box["call"]["packets_sent"]
    figures["box_call_recorded_packets"] = box["call"]["recorded"]
    figures["box_ratio"] = round(
        figures["box_call_cpu_ms_per_frame"] / figures["box_raw_cpu_ms_per_frame"], 3
    )
    figures["box_ratio_target"] = BOX_TARGET
    figures["box_window_s"] = plan.box_s
    return figures


def finite(value: Any) -> Any:
    """NaN and infinity as ``null``, so that the figures are strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def report(f: dict[str, Any]) -> None:
    def ms(v: float) -> str:
        return f"{v:.0f}"

    rows = [
        ("(1) latency, stock aiortc direct, p50 / p95 ms",
         f"{ms(f['latency_stock_p50_ms'])} / {ms(f['latency_stock_p95_ms'])}", ""),
        ("    low-latency direct, p50 / p95 ms",
         f"{ms(f['latency_direct_p50_ms'])} / {ms(f['latency_direct_p95_ms'])}", ""),
        ("    through hub.media.Relay, p50 / p95 ms",
         f"{ms(f['latency_relay_p50_ms'])} / {ms(f['latency_relay_p95_ms'])}", "p50 <= 25"),
        ("    relay p50 / stock direct p50",
         f"{f['latency_relay_p50_ms'] / f['latency_stock_p50_ms']:.2f}", ""),
        ("(2) relay core per watcher, pass-through",
         f"{f['pass_core_per_watcher']:.4f}", ""),
        ("    aiortc MediaRelay core per watcher",
         f"{f['mediarelay_core_per_watcher']:.4f}", ""),
        ("    ratio pass-through / MediaRelay", f"{f['per_watcher_ratio']:.3f}", "<= 0.05"),
        ("    watchers per core (extrapolated)", f"{f['watchers_per_core']}", ">= 200"),
        ("(3) accept -> first decoded frame, p50 / max ms",
         f"{ms(f['accept_ms_p50'])} / {ms(f['accept_ms_max'])}", "<= 500"),
        ("(4) box CPU per frame, call / encoder alone, ms",
         f"{f['box_call_cpu_ms_per_frame']:.2f} / {f['box_raw_cpu_ms_per_frame']:.2f}", ""),
        ("    ratio call / encoder alone", f"{f['box_ratio']:.2f}", "<= 1.3"),
    ]  # fmt: skip
    print()
    print(f"{'measure':<50}{'value':>16}{'target':>12}")
    for name, value, target in rows:
        print(f"{name:<50}{value:>16}{target:>12}")
    print()
    print(f"{'watchers':<10}" + "".join(f"{n:>9}" for n in f["pass_watchers"]))
    print(f"{'pass core':<10}" + "".join(f"{c:>9.3f}" for c in f["pass_cores"]))
    print(f"{'pass MB':<10}" + "".join(f"{m:>9}" for m in f["pass_rss_mb"]))
    print(f"{'MR core':<10}" + "".join(f"{c:>9.3f}" for c in f["mediarelay_cores"]))
    print(f"{'MR MB':<10}" + "".join(f"{m:>9}" for m in f["mediarelay_rss_mb"]))
    print(json.dumps(finite(f)))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows, under 60 s")
    parser.add_argument("--worker", choices=["relay", "box"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    try:
        if args.worker:
            # Ctrl-C reaches the whole process group: the orchestrator stops the workers in
            # order (stdin "stop", end of input, then SIGTERM, then SIGKILL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            asyncio.run(worker_main(args.worker, args.mode))
        else:
            report(asyncio.run(orchestrate(QUICK if args.quick else FULL, args.quick)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        if not args.worker:
            stderr("interrupted; workers stopped")
        sys.exit(130)


if __name__ == "__main__":
    main()
