"""The kiosk's speaker socket (``GET /api/v1/live/speaker``) in a real call: the box's real
``LiveService`` through a signaling server and the hub relay on 127.0.0.1, an official
(``LivePeer``) publishing video and a pure tone; Python WebSocket clients stand in for the
kiosk page and take the PCM apart."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import pytest
from aiohttp import WSCloseCode, web

from contracts import signaling as sig
from contracts.access import Audience, Role, mint_token
from edge.kiosk import live_api
from edge.kiosk.keys import KEY
from edge.kiosk.speaker import CHUNK_BYTES, CHUNK_SAMPLES, HEADER, SAMPLE_RATE, SPEAKER, Speaker
from runtime.http import serve
from tests.edge.live.conftest import COUNTY, WAIT, Stack
from tests.media.peers import wait_for
from tests.support.livepeer import LivePeer

TONE_HZ = 697.0
"""The official's tone: not the box's own microphone tone (440 Hz), not a multiple of it."""
KIOSK_KEY = b"k" * 32


@dataclass
class Kiosk:
    url: str
    port: int
    speaker: Speaker
    app: web.Application


@pytest.fixture
async def kiosk(stack: Stack) -> AsyncIterator[Kiosk]:
    """The live routes on a real aiohttp server, with the clerk-token key the box's app has."""
    app = web.Application()
    app[KEY] = KIOSK_KEY
    live_api.install(app, stack.service)
    async with serve(app, "127.0.0.1", 0) as port:
        yield Kiosk(f"ws://127.0.0.1:{port}/api/v1/live/speaker", port, app[SPEAKER], app)


@dataclass
class Heard:
    """What one speaker client received: notices, and chunks with their arrival times."""

    notices: list[dict[str, object]] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    pcm: list[np.ndarray] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    sizes: set[int] = field(default_factory=set)

    def kinds(self) -> list[object]:
        return [n["type"] for n in self.notices]


async def listen(ws: aiohttp.ClientWebSocketResponse, heard: Heard) -> None:
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT:
            heard.notices.append(msg.json())
        elif msg.type is aiohttp.WSMsgType.BINARY:
            heard.sizes.add(len(msg.data))
            (seq,) = HEADER.unpack_from(msg.data)
            heard.seqs.append(seq)
            heard.pcm.append(np.frombuffer(msg.data[HEADER.size :], dtype="<i2"))
            heard.arrivals.append(time.monotonic())


async def start_call(stack: Stack, official: LivePeer) -> sig.SessionStarted:
    """The box asks, the official accepts and publishes its video and tone."""
    service = stack.service
    await service.request_reception(stack.case_no)
    await wait_for(lambda: service.state().request_id is not None, WAIT, "the box queued")
    request_id = service.state().request_id
    assert request_id is not None
    started = await official.accept(request_id)
    await wait_for(lambda: service.call is not None, WAIT, "the box in the call")
    await official.publish(started.session_id)
    return started


def dominant_hz(pcm: np.ndarray) -> tuple[float, float]:
    """The strongest frequency of ``pcm`` (48 kHz) and the share of the power around it."""
    x = pcm.astype(np.float64) * np.hanning(len(pcm))
    power = np.abs(np.fft.rfft(x)) ** 2
    power[0] = 0.0
    peak = int(np.argmax(power))
    share = float(power[max(0, peak - 10) : peak + 11].sum() / power.sum())
    return peak * SAMPLE_RATE / len(pcm), share


async def test_the_official_tone_plays_on_the_speaker_socket_call_after_call(
    stack: Stack, kiosk: Kiosk
) -> None:
    token = stack.token("official-li", Role.OFFICIAL, COUNTY)
    heard = Heard()
    async with (
        LivePeer(stack.url, token, "official-li", tone_hz=TONE_HZ) as official,
        stack.http.ws_connect(kiosk.url) as ws,
    ):
        reader = asyncio.create_task(listen(ws, heard))
        try:
            await wait_for(lambda: heard.kinds() == ["hello"], WAIT, "the hello")
            hello = heard.notices[0]
            assert (hello["sample_rate"], hello["channels"], hello["sample_format"]) == (
                48000,
                1,
                "s16le",
            )
            assert (hello["chunk_samples"], hello["header_bytes"]) == (960, 4)
            await asyncio.sleep(0.5)
            assert not heard.seqs, "audio before any call"

            started = await start_call(stack, official)
            await wait_for(lambda: len(heard.seqs) >= 200, WAIT, "4 s of the official's audio")
            assert heard.kinds() == ["hello", "call"]
            assert heard.notices[1]["session_id"] == started.session_id
            assert heard.sizes == {HEADER.size + CHUNK_BYTES}

            # the official's tone, at 48 000 samples a second, nothing lost on the way
            steady = slice(50, 200)  # skip the first second: the connection settles
            pcm = np.concatenate(heard.pcm[steady])
            assert len(pcm) == 150 * CHUNK_SAMPLES
            hz, share = dominant_hz(pcm)
            assert abs(hz - TONE_HZ) <= 3.0, hz
            assert share > 0.9, f"a pure tone has its power in one place, not {share:.2f}"
            # a sine of amplitude 0.25 has an RMS of 0.177; the official's aiortc sends it as
            # stereo at -3 dB a channel, and the box plays the two channels' mean: 0.125
            rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) / 32768
            assert 0.1 < rms < 0.16, f"RMS {rms:.3f}, not 0.125"
            arrivals = heard.arrivals[steady]
            rate = (len(arrivals) - 1) * CHUNK_SAMPLES / (arrivals[-1] - arrivals[0])
            assert abs(rate - SAMPLE_RATE) < 0.1 * SAMPLE_RATE, rate
            seqs = heard.seqs
            assert all(b > a for a, b in itertools.pairwise(seqs)), "out of order"
            assert seqs[-1] - seqs[0] + 1 - len(seqs) <= len(seqs) // 20, "chunks lost"

            # the call ends: the socket stays open and quiet; the next call plays on it
            await official.end(started.session_id)
            await wait_for(lambda: heard.kinds()[-1:] == ["idle"], WAIT, "the idle notice")
            await asyncio.sleep(0.3)
            count = len(heard.seqs)
            await asyncio.sleep(1.0)
            assert len(heard.seqs) == count and not ws.closed
            await stack.service.wait_teardown()

            second = await start_call(stack, official)
            await wait_for(lambda: len(heard.seqs) >= count + 100, WAIT, "the second call's audio")
            assert heard.kinds() == ["hello", "call", "idle", "call"]
            assert heard.notices[3]["session_id"] == second.session_id
            hz, _ = dominant_hz(np.concatenate(heard.pcm[count + 50 : count + 100]))
            assert abs(hz - TONE_HZ) <= 3.0, hz
            assert len(kiosk.speaker.listeners) == 1
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    await wait_for(lambda: not kiosk.speaker.listeners, WAIT, "the listener gone")


async def stalled_listener(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake, then never reads again (with a tiny
    receive buffer, so the box's side fills up at once)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(
        sock,
        (
            "GET /api/v1/live/speaker HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode(),
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += await asyncio.wait_for(loop.sock_recv(sock, 1), WAIT)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_listener_that_never_reads_does_not_stall_the_call(
    stack: Stack, kiosk: Kiosk
) -> None:
    token = stack.token("official-li", Role.OFFICIAL, COUNTY)
    heard = Heard()
    stalled = await stalled_listener(kiosk.port)
    await wait_for(lambda: len(kiosk.speaker.listeners) == 1, WAIT, "the stalled listener")
    [slow] = kiosk.speaker.listeners
    try:
        async with (
            LivePeer(stack.url, token, "official-li", tone_hz=TONE_HZ) as official,
            stack.http.ws_connect(kiosk.url) as ws,
        ):
            reader = asyncio.create_task(listen(ws, heard))
            try:
                await start_call(stack, official)
                call = stack.service.call
                assert call is not None
                await wait_for(lambda: len(heard.seqs) >= 25, WAIT, "the official's audio")

                # for 5 s: the stalled page loses chunks, the call and the other page do not
                frames, chunks, began = call.remote_frames, len(heard.seqs), time.monotonic()
                await asyncio.sleep(5.0)
                seconds = time.monotonic() - began
                assert call.remote_frames - frames >= 8 * seconds, "the box stopped decoding"
                assert len(heard.seqs) - chunks >= 35 * seconds, "the reading page starved"
                assert slow.dropped > 0 and slow.queued <= kiosk.speaker.queue_chunks
                assert call.remote_audio_frames > 0 and stack.service.phase == "in_call"
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    finally:
        stalled.close()
    await wait_for(lambda: not kiosk.speaker.listeners, WAIT, "both listeners gone")


async def test_the_lan_needs_the_clerk_token(stack: Stack, kiosk: Kiosk) -> None:
    clerk = mint_token(
        KIOSK_KEY,
        sub="clerk",
        role=Role.OFFICIAL,
        jurisdiction="510104021",
        audience=Audience.API,
        ttl=dt.timedelta(minutes=5),
    )
    lan = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=lan) as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(kiosk.url)
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(kiosk.url, headers={"Authorization": "Bearer not-a-token"})
        async with http.ws_connect(kiosk.url, headers={"Authorization": f"Bearer {clerk}"}) as ws:
            hello = await ws.receive_json(timeout=WAIT)
            assert hello["type"] == "hello"
            [listener] = kiosk.speaker.listeners
            assert listener.name == "127.0.0.2"


async def test_closing_ends_every_socket_cleanly(stack: Stack, kiosk: Kiosk) -> None:
    async with stack.http.ws_connect(kiosk.url) as ws:
        assert (await ws.receive_json(timeout=WAIT))["type"] == "hello"
        await kiosk.speaker.close()
        await kiosk.speaker.close()  # safe twice
        msg = await ws.receive(timeout=WAIT)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == WSCloseCode.GOING_AWAY
    await wait_for(lambda: not kiosk.speaker.listeners, WAIT, "the listener gone")
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert not [n for n in names if "speaker" in n], names
