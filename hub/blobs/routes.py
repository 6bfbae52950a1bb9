"""HTTP routes of resumable, SHA-256-addressed blob uploads (tus-like).

Every route first calls the injected ``authorize(request)``, which returns the caller's node id
or None (→ 401). ``{sha256}`` is 64 lowercase hex digits (else 400). Errors are JSON
``{"error": "..."}`` saying what failed, with the value.

``POST /api/v1/blobs/{sha256}`` with ``Upload-Length: N`` (1 ≤ N ≤ the store's maximum) and an
optional ``Blob-Content-Type: type/subtype`` declares the upload. 201 if new, 200 if it exists
(partial or complete); the body is a ``BlobStatus`` and the headers carry ``Upload-Offset``,
``Upload-Length``, ``Blob-Complete``. Idempotent. 400 for a bad length, 413 if N is too large,
409 if the blob was declared with another length.

``HEAD /api/v1/blobs/{sha256}`` → 200 with ``Upload-Offset``, ``Upload-Length`` and
``Blob-Complete: true|false``; 404 if never declared (or discarded after a failed hash).
``GET /api/v1/blobs/{sha256}/status`` answers the same as a ``BlobStatus`` JSON body.

``PATCH /api/v1/blobs/{sha256}`` with ``Upload-Offset: k``, ``Content-Type:
application/offset+octet-stream`` and a ``Content-Length`` of at most 8 MiB appends the body.
204 with the new ``Upload-Offset`` (and ``Blob-Complete``); 409 with the current offset (header
and JSON ``offset``) if k is not it; 413 if the body would pass the declared length; 411
without ``Content-Length``; 415 for another content type; 404 if not declared. The body is
streamed to disk in pieces; if the connection is cut, what arrived stays written. When the
offset reaches the length the hub verifies the SHA-256: a match moves the blob into the store
(``Blob-Complete: true``), a mismatch deletes the partial upload and answers 422 with
``expected`` and ``actual``. PATCHes of one blob never interleave (a per-blob lock; 423 if it
stays busy).

``GET /api/v1/blobs/{sha256}`` → the complete blob with the content type given at POST
(``Cache-Control: private, no-store``: who may read it is decided, and noted, on every request);
404 while incomplete. A ``ReadAccess`` given to ``blob_routes`` decides downloads (the hub's
officials, cut to their jurisdiction, each read audited); without one, the upload
``authorize`` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from contracts.blobs import (
    BLOB_COMPLETE,
    BLOBS_PATH,
    MAX_PATCH_BYTES,
    PATCH_CONTENT_TYPE,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
    BlobStatus,
    InvalidBlobRequest,
    format_bool,
    is_sha256,
    parse_content_type,
    parse_count,
)
from contracts.blobs import BLOB_CONTENT_TYPE as BLOB_CONTENT_TYPE_HEADER
from hub.blobs.store import BlobError, BlobStore, HashMismatch, OffsetMismatch
from runtime.http import json_error

log = logging.getLogger(__name__)

Authorize = Callable[[web.Request], str | None]
"""Returns the node id of the caller (from its token), or None to answer 401."""


class ReadAccess(Protocol):
    """Who may download which blob, and what is noted when they do."""

    def authorize(self, request: web.Request) -> str | None:
        """The reader's id, or None to answer 401."""

    async def admit(self, request: web.Request, sha256: str) -> web.Response | None:
        """After ``authorize`` let the reader in and the address was checked: None lets the
        download go on, a response is sent instead. Runs before the store is looked at, so a
        refusal says nothing about whether the blob exists."""

    async def served(self, request: web.Request, sha256: str) -> None:
        """The complete blob was found and is about to be sent (e.g. audit the read)."""


class _AsUploads:
    """Downloads decided by the upload ``authorize``, admitted without further checks."""

    def __init__(self, authorize: Authorize) -> None:
        self.authorize = authorize

    async def admit(self, request: web.Request, sha256: str) -> web.Response | None:
        return None

    async def served(self, request: web.Request, sha256: str) -> None:
        return None


_READ_PIECE = 64 * 1024


class _BodyCut(Exception):
    """The PATCH body stopped arriving (connection cut, reset or silent too long)."""


def blob_routes(
    store: BlobStore,
    authorize: Authorize,
    *,
    read_access: ReadAccess | None = None,
    read_timeout: float = 30.0,
) -> list[web.RouteDef]:
    """The blob routes, for ``app.add_routes``; ``read_timeout`` bounds a silent PATCH body."""
    h = _Handlers(store, authorize, read_access or _AsUploads(authorize), read_timeout)
    item = BLOBS_PATH + "/{sha256}"
    return [
        web.post(item, h.create),
        web.head(item, h.head),
        web.patch(item, h.patch),
        web.get(item, h.download, allow_head=False),
        web.get(item + "/status", h.status, allow_head=False),
    ]


def _headers(status: BlobStatus) -> dict[str, str]:
    return {
        UPLOAD_OFFSET: str(status.offset),
        UPLOAD_LENGTH: str(status.length),
        BLOB_COMPLETE: format_bool(status.complete),
        "Cache-Control": "no-store",
    }


class _Handlers:
    def __init__(
        self, store: BlobStore, authorize: Authorize, reads: ReadAccess, timeout: float
    ) -> None:
        self.store = store
        self.authorize = authorize
        self.reads = reads
        self.timeout = timeout

    def _guard(self, request: web.Request, authorize: Authorize) -> tuple[str, str] | web.Response:
        node = authorize(request)
        if node is None:
            return json_error(401, "missing or invalid authorization: send 'Bearer <token>'")
        sha = request.match_info["sha256"]
        if not is_sha256(sha):
            return json_error(400, f"blob address must be 64 lowercase hex digits, got {sha!r}")
        return node, sha

    async def create(self, request: web.Request) -> web.Response:
        guard = self._guard(request, self.authorize)
        if isinstance(guard, web.Response):
            return guard
        node, sha = guard
        try:
            length = parse_count(UPLOAD_LENGTH, request.headers.get(UPLOAD_LENGTH))
            ctype = parse_content_type(request.headers.get(BLOB_CONTENT_TYPE_HEADER))
            if length == 0:
                raise InvalidBlobRequest(f"{UPLOAD_LENGTH} must be at least 1, got 0")
            status, created = await self.store.create(sha, length, node=node, content_type=ctype)
        except InvalidBlobRequest as exc:
            return json_error(400, str(exc))
        except BlobError as exc:
            return json_error(exc.status, str(exc))
        except OSError as exc:
            log.exception("could not declare blob %s from node %s", sha, node)
            return json_error(500, f"could not store blob {sha}: {exc.strerror}")
        headers = _headers(status) | {"Location": request.path}
        return web.json_response(
            status.model_dump(mode="json"), status=201 if created else 200, headers=headers
        )

    async def _declared(self, request: web.Request) -> BlobStatus | web.Response:
        """The blob's upload status, or the 401/400/404 answer."""
        guard = self._guard(request, self.authorize)
        if isinstance(guard, web.Response):
            return guard
        status = await self.store.status(guard[1])
        if status is None:
            return json_error(404, f"no upload declared for blob {guard[1]}")
        return status

    async def head(self, request: web.Request) -> web.Response:
        status = await self._declared(request)
        if isinstance(status, web.Response):
            return status
        return web.Response(status=200, headers=_headers(status))

    async def status(self, request: web.Request) -> web.Response:
        status = await self._declared(request)
        if isinstance(status, web.Response):
            return status
        return web.json_response(status.model_dump(mode="json"), headers=_headers(status))

    async def patch(self, request: web.Request) -> web.Response:
        guard = self._guard(request, self.authorize)
        if isinstance(guard, web.Response):
            return guard
        node, sha = guard
        if request.content_type != PATCH_CONTENT_TYPE:
            return json_error(
                415,
                f"PATCH Content-Type must be {PATCH_CONTENT_TYPE}, got {request.content_type!r}",
            )
        try:
            offset = parse_count(UPLOAD_OFFSET, request.headers.get(UPLOAD_OFFSET))
        except InvalidBlobRequest as exc:
            return json_error(400, str(exc))
        size = request.content_length
        if size is None:
            return json_error(411, "PATCH needs a Content-Length (chunked bodies are refused)")
        if size > MAX_PATCH_BYTES:
            return json_error(413, f"PATCH body of {size} bytes exceeds {MAX_PATCH_BYTES}")
        try:
            status = await self.store.append(sha, offset, self._body(request), size, node=node)
        except OffsetMismatch as exc:
            return json_error(409, str(exc), {UPLOAD_OFFSET: str(exc.offset)}, offset=exc.offset)
        except HashMismatch as exc:
            return json_error(422, str(exc), expected=exc.expected, actual=exc.actual)
        except BlobError as exc:
            return json_error(exc.status, str(exc))
        except _BodyCut as exc:
            log.info("PATCH of blob %s from node %s at %d cut: %s", sha, node, offset, exc)
            return json_error(400, f"PATCH body did not arrive whole: {exc}")
        except OSError as exc:
            log.exception("could not write blob %s from node %s", sha, node)
            return json_error(500, f"could not store blob {sha}: {exc.strerror}")
        return web.Response(status=204, headers=_headers(status))

    async def download(self, request: web.Request) -> web.StreamResponse:
        guard = self._guard(request, self.reads.authorize)
        if isinstance(guard, web.Response):
            return guard
        sha = guard[1]
        refused = await self.reads.admit(request, sha)
        if refused is not None:
            return refused
        path = await asyncio.to_thread(self.store.path_of, sha)
        meta = await self.store.meta(sha)
        if path is None or meta is None:
            return json_error(404, f"blob {sha} is not complete")
        await self.reads.served(request, sha)
        headers = {
            "Content-Type": meta.content_type,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, no-store",
        }
        return web.FileResponse(path, headers=headers)

    async def _body(self, request: web.Request) -> AsyncIterator[bytes]:
        """The PATCH body in pieces of at most 64 KiB; a cut or silent peer raises ``_BodyCut``."""
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    piece = await request.content.read(_READ_PIECE)
            except TimeoutError:
                raise _BodyCut(f"no bytes for {self.timeout}s") from None
            except (OSError, HttpProcessingError, asyncio.IncompleteReadError) as exc:
                raise _BodyCut(f"{type(exc).__name__}: {exc}") from None
            if not piece:
                return
            yield piece
