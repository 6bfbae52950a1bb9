"""Blob uploads end to end: a real hub on 127.0.0.1, real files, a cutting TCP proxy between."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler, Middleware

from contracts.blobs import (
    BLOB_COMPLETE,
    PATCH_CONTENT_TYPE,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
    BlobStatus,
    InvalidBlobRequest,
    blob_path,
    is_sha256,
    parse_content_type,
    parse_count,
)
from edge.sync.uploader import RetryPolicy, UploadGaveUp, UploadRejected, sha256_file, upload_blob
from hub.blobs import BlobStore, blob_routes
from runtime.http import serve

MiB = 1024 * 1024
MAX_BYTES = 8 * MiB
TOKENS = {"token-box-1": "box-1", "token-box-2": "box-2"}
AUTH = {"Authorization": "Bearer token-box-1"}
QUICK = RetryPolicy(attempts=6, backoff_s=0.01, max_backoff_s=0.05, sock_read_s=5.0)
"""Backoff shrunk from 0.5-30 s so that ten interrupted uploads finish in a few seconds."""


def authorize(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return TOKENS.get(token) if scheme.lower() == "bearer" else None


@dataclass
class Hub:
    url: str
    store: BlobStore
    methods: list[str] = field(default_factory=list)
    fail_patches: int = 0
    """How many of the next PATCHes the hub answers with 503 (a hub in trouble)."""

    def blob_url(self, sha: str) -> str:
        return f"{self.url}/api/v1/blobs/{sha}"


def recording(hub: Hub) -> Middleware:
    """A middleware that notes the method of every request, and fails PATCHes on demand."""

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        hub.methods.append(request.method)
        if request.method == "PATCH" and hub.fail_patches > 0:
            hub.fail_patches -= 1
            return web.json_response({"error": "overloaded"}, status=503)
        return await handler(request)

    return record


@pytest.fixture(params=["runner"])
async def hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Hub]:
    """The blob routes served like the hub serves them ("runner"), or by aiohttp's TestServer
    ("cancelling"), which cancels a handler whose client went away."""
    h = Hub("", BlobStore(tmp_path / "hub", max_bytes=MAX_BYTES))
    app = web.Application(middlewares=[recording(h)])
    app.add_routes(blob_routes(h.store, authorize))
    if request.param == "cancelling":
        async with TestServer(app, host="127.0.0.1", port=0) as server:
            h.url = f"http://127.0.0.1:{server.port}"
            yield h
    else:
        async with serve(app, "127.0.0.1", 0) as port:
            h.url = f"http://127.0.0.1:{port}"
            yield h


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def blob_file(tmp_path: Path, name: str, data: bytes) -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


class CuttingProxy(AbstractAsyncContextManager["CuttingProxy"]):
    """Forwards TCP to ``upstream_port``; once ``cut_after`` client→server bytes (counted over
    all connections) have passed, it cuts that connection; later connections pass untouched."""

    def __init__(self, upstream_port: int, cut_after: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.forwarded = 0
        self.cuts = 0
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        hub_r, hub_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers |= {client_w, hub_w}
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._upstream(client_r, hub_w, client_w))
                tg.create_task(_pump(hub_r, client_w))
        except* (OSError, EOFError):
            pass
        finally:
            client_w.close()
            hub_w.close()
            self._writers -= {client_w, hub_w}
            self._tasks.discard(task)

    async def _upstream(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, client_w: asyncio.StreamWriter
    ) -> None:
        while data := await src.read(64 * 1024):
            if self.cut_after is not None and self.forwarded + len(data) >= self.cut_after:
                keep = self.cut_after - self.forwarded
                dst.write(data[:keep])
                await dst.drain()
                self.forwarded += keep
                self.cut_after, self.cuts = None, self.cuts + 1
                client_w.transport.abort()
                raise EOFError("cut")
            dst.write(data)
            await dst.drain()
            self.forwarded += len(data)
        raise EOFError("client closed")


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(64 * 1024):
        dst.write(data)
        await dst.drain()
    raise EOFError("hub closed")


async def test_upload_roundtrip_and_idempotent(
    hub: Hub, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = random.Random(1).randbytes(3 * MiB)
    path, sha = blob_file(tmp_path, "photo.jpg", data)
    assert sha256_file(path) == sha
    await upload_blob(
        session, hub.url, path, sha, "token-box-1", rate_bps=None, content_type="image/jpeg"
    )
    assert hub.methods.count("PATCH") == 12
    async with session.get(hub.blob_url(sha), headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.content_type == "image/jpeg"
        assert await resp.read() == data
    stored = hub.store.path_of(sha)
    assert stored is not None and hashlib.sha256(stored.read_bytes()).hexdigest() == sha
    assert await hub.store.is_complete(sha)
    meta = await hub.store.meta(sha)
    assert meta is not None and meta.created_by == "box-1" and meta.uploaders == ["box-1"]
    assert not list((tmp_path / "hub" / "partial").iterdir())

    hub.methods.clear()
    await upload_blob(session, hub.url, path, sha, "token-box-2", rate_bps=None)
    assert hub.methods == ["POST"]


async def test_interrupted_at_ten_random_offsets(
    hub: Hub, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    rng = random.Random(20240611)
    port = int(hub.url.rsplit(":", 1)[1])
    for i in range(10):
        data = rng.randbytes(MiB)
        path, sha = blob_file(tmp_path, f"rec-{i}.bin", data)
        cut = rng.randrange(1, len(data))
        async with CuttingProxy(port, cut_after=cut) as proxy:
            url = f"http://127.0.0.1:{proxy.port}"
            await upload_blob(session, url, path, sha, "token-box-1", rate_bps=None, retry=QUICK)
        assert proxy.cuts == 1, f"cut at {cut} never happened"
        stored = hub.store.path_of(sha)
        assert stored is not None, f"blob {i} (cut at {cut}) not complete"
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha


@pytest.mark.parametrize("hub", ["runner", "cancelling"], indirect=True)
async def test_cut_keeps_progress_and_resumes(
    hub: Hub, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = random.Random(2).randbytes(2 * MiB)
    path, sha = blob_file(tmp_path, "rec.bin", data)
    port = int(hub.url.rsplit(":", 1)[1])
    once = RetryPolicy(attempts=1)
    async with CuttingProxy(port, cut_after=MiB) as proxy:  # midway through the one PATCH body
        url = f"http://127.0.0.1:{proxy.port}"
        with pytest.raises(UploadGaveUp):
            await upload_blob(
                session, url, path, sha, "token-box-1", rate_bps=None, chunk=2 * MiB, retry=once
            )
    offset, deadline = 0, time.monotonic() + 5
    while offset == 0 and time.monotonic() < deadline:
        async with session.head(hub.blob_url(sha), headers=AUTH) as resp:
            assert resp.status == 200 and resp.headers[BLOB_COMPLETE] == "false"
            offset = int(resp.headers[UPLOAD_OFFSET])
        await asyncio.sleep(0.02)
    assert 0 < offset < MiB

    async with CuttingProxy(port) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        await upload_blob(session, url, path, sha, "token-box-1", rate_bps=None, retry=QUICK)
    assert proxy.forwarded < len(data) - offset + 4096, "the upload restarted from zero"
    assert await hub.store.is_complete(sha)


async def test_wrong_content_is_refused_and_discarded(
    hub: Hub, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    declared = hashlib.sha256(b"the photo the box meant").hexdigest()
    sent = b"something else entirely!"
    url = hub.blob_url(declared)
    async with session.post(url, headers=AUTH | {UPLOAD_LENGTH: str(len(sent))}) as resp:
        assert resp.status == 201
    patch = AUTH | {UPLOAD_OFFSET: "0", "Content-Type": PATCH_CONTENT_TYPE}
    async with session.patch(url, headers=patch, data=sent) as resp:
        assert resp.status == 422
        body = await resp.json()
    assert body["expected"] == declared and body["actual"] == hashlib.sha256(sent).hexdigest()
    assert declared in body["error"]
    async with session.head(url, headers=AUTH) as resp:
        assert resp.status == 404
    assert not await hub.store.is_complete(declared)
    assert not list((tmp_path / "hub" / "partial").glob(f"{declared}*"))

    path, _ = blob_file(tmp_path, "x.bin", sent)
    with pytest.raises(UploadRejected) as info:
        await upload_blob(session, hub.url, path, declared, "token-box-1", rate_bps=None)
    assert info.value.status == 422


async def test_protocol_errors(hub: Hub, session: aiohttp.ClientSession) -> None:
    sha = hashlib.sha256(b"0123456789" * 3).hexdigest()
    url = hub.blob_url(sha)

    async def call(
        method: str, target: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        async with session.request(method, target, headers=headers, data=body) as resp:
            got = await resp.json() if resp.content_type == "application/json" else {}
            return resp.status, got

    declare = AUTH | {UPLOAD_LENGTH: "30"}
    assert (await call("POST", url, {UPLOAD_LENGTH: "30"}))[0] == 401
    status, body = await call("POST", url, {"Authorization": "Bearer forged", UPLOAD_LENGTH: "30"})
    assert status == 401 and "authorization" in body["error"]
    assert (await call("HEAD", url, {}))[0] == 401
    assert (await call("GET", url, {"Authorization": "Basic Ym94OnB3"}))[0] == 401

    for bad in ("abc", sha.upper(), sha[:-1] + "g"):
        status, body = await call("POST", hub.blob_url(bad), declare)
        assert status == 400 and repr(bad) in body["error"]
    for length in ("-1", "ten", "0", ""):
        assert (await call("POST", url, AUTH | {UPLOAD_LENGTH: length}))[0] == 400
    status, body = await call("POST", url, AUTH | {UPLOAD_LENGTH: str(MAX_BYTES + 1)})
    assert status == 413 and str(MAX_BYTES + 1) in body["error"]

    assert (await call("HEAD", url, AUTH))[0] == 404
    assert (await call("POST", url, declare))[0] == 201
    status, body = await call("POST", url, declare)
    assert status == 200 and body["offset"] == 0 and body["complete"] is False
    assert (await call("POST", url, AUTH | {UPLOAD_LENGTH: "31"}))[0] == 409

    def at(offset: int, ctype: str = PATCH_CONTENT_TYPE) -> dict[str, str]:
        return AUTH | {UPLOAD_OFFSET: str(offset), "Content-Type": ctype}

    assert (await call("PATCH", url, at(0), b"0123456789"))[0] == 204
    for offset in (0, 20):
        status, body = await call("PATCH", url, at(offset), b"0123456789")
        assert status == 409 and body["offset"] == 10 and f"Upload-Offset {offset}" in body["error"]
    status, body = await call("PATCH", url, at(10), b"x" * 21)
    assert status == 413 and "declared length 30" in body["error"]
    assert (await call("PATCH", url, at(10, "text/plain"), b"0123456789"))[0] == 415
    assert (await call("GET", url, AUTH))[0] == 404
    status, body = await call("GET", f"{url}/status", AUTH)
    assert (status, body["offset"], body["length"], body["complete"]) == (200, 10, 30, False)


async def test_rate_cap(hub: Hub, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    rng = random.Random(3)
    elapsed = {}
    for rate in (2 * MiB, None):
        path, sha = blob_file(tmp_path, f"r-{rate}.bin", rng.randbytes(MiB))
        start = time.monotonic()
        await upload_blob(session, hub.url, path, sha, "token-box-1", rate_bps=rate)
        elapsed[rate] = time.monotonic() - start
        assert await hub.store.is_complete(sha)
    assert elapsed[2 * MiB] >= 0.35
    assert elapsed[None] < elapsed[2 * MiB]


async def test_two_boxes_upload_one_blob_at_once(
    hub: Hub, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The per-blob lock: interleaved PATCHes of one blob resync by 409, never corrupt it."""
    path, sha = blob_file(tmp_path, "same.bin", random.Random(4).randbytes(2 * MiB))
    await asyncio.gather(
        *(
            upload_blob(
                session, hub.url, path, sha, tok, rate_bps=None, chunk=64 * 1024, retry=QUICK
            )
            for tok in TOKENS
        )
    )
    stored = hub.store.path_of(sha)
    assert stored is not None and hashlib.sha256(stored.read_bytes()).hexdigest() == sha


async def test_server_errors_are_retried_then_given_up(
    hub: Hub, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path, sha = blob_file(tmp_path, "p.bin", random.Random(5).randbytes(300 * 1024))
    hub.fail_patches = 3
    await upload_blob(session, hub.url, path, sha, "token-box-1", rate_bps=None, retry=QUICK)
    assert await hub.store.is_complete(sha) and hub.methods.count("PATCH") == 5

    path, sha = blob_file(tmp_path, "q.bin", random.Random(6).randbytes(1000))
    hub.fail_patches = 100
    with pytest.raises(UploadGaveUp, match="503: overloaded"):
        await upload_blob(session, hub.url, path, sha, "token-box-1", rate_bps=None, retry=QUICK)
    assert not await hub.store.is_complete(sha)


@dataclass
class Reads:
    """A ``ReadAccess``: box-1's token reads the blobs in ``allowed``; it notes every call."""

    allowed: set[str] = field(default_factory=set)
    admitted: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    def authorize(self, request: web.Request) -> str | None:
        reader = authorize(request)
        return reader if reader == "box-1" else None

    async def admit(self, request: web.Request, sha256: str) -> web.Response | None:
        self.admitted.append(sha256)
        return None if sha256 in self.allowed else web.json_response({"error": "no"}, status=404)

    async def served(self, request: web.Request, sha256: str) -> None:
        self.sent.append(sha256)


async def test_read_access_decides_downloads_only(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Uploads and their status follow ``authorize``; a download needs ``read_access``'s
    reader, then its ``admit`` (before the store is looked at), and is ``served`` once sent."""
    reads, store = Reads(), BlobStore(tmp_path / "hub", max_bytes=MAX_BYTES)
    app = web.Application()
    app.add_routes(blob_routes(store, authorize, read_access=reads))
    rng = random.Random(7)
    async with serve(app, "127.0.0.1", 0) as port:
        hub = Hub(f"http://127.0.0.1:{port}", store)
        shas = []
        for name in ("mine.jpg", "theirs.jpg"):
            path, sha = blob_file(tmp_path, name, rng.randbytes(1000))
            await upload_blob(session, hub.url, path, sha, "token-box-2", rate_bps=None)
            shas.append(sha)
        mine, theirs = shas
        partial = hashlib.sha256(b"not all here").hexdigest()
        async with session.post(hub.blob_url(partial), headers=AUTH | {UPLOAD_LENGTH: "12"}):
            pass
        reads.allowed = {mine, partial}
        box2 = {"Authorization": "Bearer token-box-2"}
        async with session.head(hub.blob_url(mine), headers=box2) as resp:
            assert resp.status == 200 and resp.headers[BLOB_COMPLETE] == "true"
        async with session.get(hub.blob_url(mine), headers=box2) as resp:
            assert resp.status == 401
        assert reads.admitted == []

        async with session.get(hub.blob_url(mine), headers=AUTH) as resp:
            assert resp.status == 200
            assert hashlib.sha256(await resp.read()).hexdigest() == mine
            assert resp.headers["Cache-Control"] == "private, no-store"
        async with session.get(hub.blob_url(theirs), headers=AUTH) as resp:
            assert resp.status == 404 and await resp.json() == {"error": "no"}
        async with session.get(hub.blob_url(partial), headers=AUTH) as resp:
            assert resp.status == 404 and "not complete" in (await resp.json())["error"]
        async with session.get(hub.blob_url("ab" * 31), headers=AUTH) as resp:
            assert resp.status == 400
    assert reads.admitted == [mine, theirs, partial]
    assert reads.sent == [mine]


def test_protocol_helpers() -> None:
    sha = hashlib.sha256(b"x").hexdigest()
    assert is_sha256(sha) and blob_path(sha) == f"/api/v1/blobs/{sha}"
    assert not any(is_sha256(v) for v in (sha.upper(), sha[:-1], sha + "0", None, 42))
    for bad in ("+1", " 1", "1.0", "", "1" * 20):
        with pytest.raises(InvalidBlobRequest, match="Upload-Offset"):
            parse_count(UPLOAD_OFFSET, bad)
    assert parse_content_type(None) == "application/octet-stream"
    assert parse_content_type(" Image/JPEG ") == "image/jpeg"
    with pytest.raises(InvalidBlobRequest):
        parse_content_type("text/html; charset=utf-8")
    with pytest.raises(ValueError, match="exceeds length"):
        BlobStatus(sha256=sha, length=10, offset=11, complete=False)
