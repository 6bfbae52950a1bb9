"""Upload a blob (photo, recording) to the hub: resumable, idempotent, bandwidth-capped.

The protocol is in ``contracts.blobs`` and ``hub.blobs.routes``. ``upload_blob`` declares the
blob with ``POST`` (idempotent: a blob the hub already holds costs one request), then sends
``PATCH`` chunks from the hub's offset until the hub answers ``Blob-Complete: true``. On a
network error, a timeout, 423 or a 5xx it waits (exponential backoff with jitter) and re-reads
the offset with ``HEAD``; on 409 it resyncs to the hub's offset the same way. It gives up after
``RetryPolicy.attempts`` failures in a row without the hub's offset moving. A 4xx the hub means
(bad request, 401, 413, 422 hash mismatch) raises ``UploadRejected``: retrying cannot help.

The cap is a token bucket (``RateLimiter``), charged per 16 KiB piece of each PATCH body so the
line sees a smooth rate rather than chunk-sized bursts; share one limiter between concurrent
uploads to cap the box as a whole, below its live video.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict

from contracts.blobs import (
    BLOB_COMPLETE,
    BLOB_CONTENT_TYPE,
    DEFAULT_CHUNK_BYTES,
    DEFAULT_CONTENT_TYPE,
    MAX_PATCH_BYTES,
    PATCH_CONTENT_TYPE,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
    BlobStatus,
    InvalidBlobRequest,
    blob_path,
    check_sha256,
    parse_count,
)
from edge.errors import EdgeError

log = logging.getLogger(__name__)

_SEND_PIECE = 16 * 1024
_HASH_PIECE = 1024 * 1024


class UploadError(EdgeError):
    """A blob upload could not be finished."""


class UploadRejected(UploadError):
    """The hub refused the upload for good (401, 413, 422...); ``status`` says which."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UploadGaveUp(UploadError):
    """Too many failures in a row without progress (network down, hub failing)."""


class _Retry(Exception):
    """A failure worth another try after a pause (network error, 5xx, 423)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard ``upload_blob`` tries before raising ``UploadGaveUp``."""

    attempts: int = 8
    """Failures in a row, without the hub's offset moving, before giving up."""
    backoff_s: float = 0.5
    """First pause; it doubles after each failure up to ``max_backoff_s`` (with jitter)."""
    max_backoff_s: float = 30.0
    sock_read_s: float = 60.0
    """A request whose answer stays silent this long counts as a network failure."""

    def delay(self, failures: int) -> float:
        """The pause after the ``failures``-th failure in a row: 50-100% of the doubled base."""
        base = min(self.max_backoff_s, self.backoff_s * 2.0 ** (failures - 1))
        return base * random.uniform(0.5, 1.0)


class RateLimiter:
    """A token bucket: on average at most ``rate_bps`` bytes/s, bursts up to ``burst`` bytes.

    ``acquire(n)`` takes ``n`` tokens, sleeping while the bucket is in debt, so concurrent
    callers sharing one limiter share the rate.
    """

    def __init__(self, rate_bps: int, *, burst: int | None = None) -> None:
        if rate_bps <= 0:
            raise ValueError(f"rate_bps must be positive, got {rate_bps}")
        self.rate_bps = rate_bps
        self.burst = burst if burst is not None else max(rate_bps // 10, 1)
        self._tokens = float(self.burst)
        self._last = time.monotonic()

    async def acquire(self, n: int) -> None:
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate_bps)
        self._last = now
        self._tokens -= n
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self.rate_bps)


def sha256_file(path: Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB pieces (blocking: use a thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while piece := f.read(_HASH_PIECE):
            digest.update(piece)
    return digest.hexdigest()


async def upload_blob(
    session: aiohttp.ClientSession,
    base_url: str,
    path: Path,
    sha256: str,
    token: str,
    *,
    rate_bps: int | None,
    chunk: int = DEFAULT_CHUNK_BYTES,
    content_type: str = DEFAULT_CONTENT_TYPE,
    retry: RetryPolicy | None = None,
    limiter: RateLimiter | None = None,
) -> None:
    """Upload ``path`` as blob ``sha256`` to the hub at ``base_url``; returns once it verified.

    ``rate_bps`` caps this upload (None: uncapped) unless ``limiter`` is given, which is then
    used instead (share one to cap several uploads together).
    """
    check_sha256(sha256)
    if not 0 < chunk <= MAX_PATCH_BYTES:
        raise ValueError(f"chunk must be within 1..{MAX_PATCH_BYTES} bytes, got {chunk}")
    if limiter is None and rate_bps is not None:
        limiter = RateLimiter(rate_bps)
    length = (await asyncio.to_thread(path.stat)).st_size
    url = base_url.rstrip("/") + blob_path(sha256)
    upload = _Upload(session, url, path, sha256, length, token, content_type)
    await upload.run(chunk, limiter, retry or RetryPolicy())


class _Upload:
    """One blob's upload: where it stands and the requests that move it on."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        path: Path,
        sha: str,
        length: int,
        token: str,
        content_type: str,
    ) -> None:
        self.session = session
        self.url = url
        self.path = path
        self.sha = sha
        self.length = length
        self.headers = {"Authorization": f"Bearer {token}"}
        self.content_type = content_type
        self.timeout = aiohttp.ClientTimeout()

    async def run(self, chunk: int, limiter: RateLimiter | None, policy: RetryPolicy) -> None:
        self.timeout = aiohttp.ClientTimeout(total=None, sock_read=policy.sock_read_s)
        failures, best, declared, last = 0, -1, False, "no answer"
        offset: int | None = None  # None: ask the hub (HEAD, or POST if it does not know it)
        while failures < policy.attempts:
            try:
                if offset is None:
                    state = (await self._head() if declared else None) or await self._post()
                    declared = True
                    if state.complete:
                        log.info("blob %s is complete at %s", self.sha, self.url)
                        return
                    offset = state.offset
                if offset > best:
                    best, failures = offset, 0
                offset, complete = await self._patch(offset, chunk, limiter)
                if complete:
                    log.info("blob %s uploaded to %s (%d bytes)", self.sha, self.url, self.length)
                    return
                if offset is None:  # 409 or 404: resync with the hub at once, no pause
                    failures, last = failures + 1, "offset conflict"
            except _Retry as exc:
                failures, last, offset = failures + 1, str(exc), None
                if failures < policy.attempts:
                    delay = policy.delay(failures)
                    log.warning(
                        "upload of blob %s: %s; retry %d in %.2fs", self.sha, exc, failures, delay
                    )
                    await asyncio.sleep(delay)
        raise UploadGaveUp(
            f"upload of blob {self.sha} to {self.url} failed {failures} times in a row "
            f"(hub offset {max(best, 0)} of {self.length}), last: {last}"
        )

    async def _request(self, method: str, **kwargs: Any) -> tuple[int, CIMultiDict[str], Any]:
        """Status, headers and JSON body (or None) of one request; network failures → _Retry."""
        headers = self.headers | kwargs.pop("headers", {})
        try:
            async with self.session.request(
                method, self.url, headers=headers, timeout=self.timeout, **kwargs
            ) as resp:
                body: Any = None
                if method != "HEAD" and resp.content_type == "application/json":
                    with contextlib.suppress(ValueError):
                        body = await resp.json()
                status, got = resp.status, resp.headers.copy()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _Retry(f"{method} failed: {type(exc).__name__}: {exc}") from None
        if status >= 500 or status == 423:
            raise _Retry(f"{method} answered {status}: {_reason(body)}")
        return status, got, body

    def _reject(self, method: str, status: int, body: Any) -> UploadRejected:
        return UploadRejected(
            f"hub refused {method} of blob {self.sha} with {status}: {_reason(body)}", status
        )

    async def _post(self) -> BlobStatus:
        headers = {UPLOAD_LENGTH: str(self.length), BLOB_CONTENT_TYPE: self.content_type}
        status, _, body = await self._request("POST", headers=headers)
        if status not in (200, 201):
            raise self._reject("POST", status, body)
        try:
            return BlobStatus.model_validate(body)
        except ValueError as exc:
            raise UploadError(f"hub answered POST of blob {self.sha} with {body!r}") from exc

    async def _head(self) -> BlobStatus | None:
        status, headers, body = await self._request("HEAD")
        if status == 404:
            return None
        if status != 200:
            raise self._reject("HEAD", status, body)
        try:
            return BlobStatus(
                sha256=self.sha,
                length=parse_count(UPLOAD_LENGTH, headers.get(UPLOAD_LENGTH)),
                offset=parse_count(UPLOAD_OFFSET, headers.get(UPLOAD_OFFSET)),
                complete=headers.get(BLOB_COMPLETE) == "true",
            )
        except (InvalidBlobRequest, ValueError) as exc:
            raise UploadError(f"hub answered HEAD of blob {self.sha} with {exc}") from None

    async def _patch(
        self, offset: int, chunk: int, limiter: RateLimiter | None
    ) -> tuple[int | None, bool]:
        """Send one chunk at ``offset``: the new offset and completeness, or (None, False)."""
        data = await asyncio.to_thread(_read_at, self.path, offset, chunk)
        headers = {
            UPLOAD_OFFSET: str(offset),
            "Content-Type": PATCH_CONTENT_TYPE,
            "Content-Length": str(len(data)),
        }
        payload: bytes | AsyncIterator[bytes] = data
        if limiter is not None and data:
            payload = _paced(data, limiter)
        status, got, body = await self._request("PATCH", headers=headers, data=payload)
        if status in (409, 404):
            log.info("blob %s: PATCH at %d answered %d, resyncing", self.sha, offset, status)
            return None, False
        if status != 204:
            raise self._reject("PATCH", status, body)
        try:
            new = parse_count(UPLOAD_OFFSET, got.get(UPLOAD_OFFSET))
        except InvalidBlobRequest as exc:
            raise UploadError(f"hub answered PATCH of blob {self.sha} with {exc}") from None
        return new, got.get(BLOB_COMPLETE) == "true"


async def _paced(data: bytes, limiter: RateLimiter) -> AsyncIterator[bytes]:
    for start in range(0, len(data), _SEND_PIECE):
        piece = data[start : start + _SEND_PIECE]
        await limiter.acquire(len(piece))
        yield piece


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(size)


def _reason(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return "no reason given"
