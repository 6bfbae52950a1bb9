"""The hub's blob store on disk: partial uploads, verified objects, one writer per blob.

Layout under ``root``::

    partial/<sha>.part        bytes received so far (its size is the upload offset)
    partial/<sha>.json        sidecar: declared length, content type, uploading node(s)
    objects/<sha[:2]>/<sha>   the verified blob, moved here by os.replace
    objects/<sha[:2]>/<sha>.json   the sidecar, kept for the audit (who uploaded it)

A blob is complete exactly when its object file exists; it is moved there only after the
SHA-256 of the whole file matched its name. Every answer is given after the file and, when a
name appeared or vanished, its directory were fsynced. Bytes are appended under a per-blob
``asyncio.Lock`` so two PATCHes never interleave; all disk work runs in ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.blobs import DEFAULT_CONTENT_TYPE, MAX_BLOB_BYTES, BlobStatus, check_sha256
from hub.errors import HubError

log = logging.getLogger(__name__)

_HASH_PIECE = 1024 * 1024


class BlobError(HubError):
    """Base class: a blob request the store refused; ``status`` is the HTTP answer."""

    status = 400


class UnknownBlob(BlobError):
    """No upload was declared (POST) for this blob, or it was discarded."""

    status = 404


class BlobTooLarge(BlobError):
    """A declared length, or a PATCH body, larger than the hub accepts."""

    status = 413


class LengthConflict(BlobError):
    """A POST declares a length other than the one already declared for this blob."""

    status = 409


class OffsetMismatch(BlobError):
    """A PATCH starts at an offset other than the bytes held; ``offset`` is the right one."""

    status = 409

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class HashMismatch(BlobError):
    """The whole upload's SHA-256 is not its address; the partial file was deleted."""

    status = 422

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"SHA-256 of the uploaded bytes is {actual}, expected {expected}")
        self.expected = expected
        self.actual = actual


class BlobBusy(BlobError):
    """Another request held this blob's lock for too long."""

    status = 423


class BlobMeta(BaseModel):
    """The sidecar of one blob (JSON on disk, never on a wire)."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    sha256: str
    length: int = Field(gt=0)
    content_type: str = DEFAULT_CONTENT_TYPE
    created_by: str = Field(description="node id of the box that declared the upload")
    uploaders: list[str] = Field(description="node ids that sent bytes, in order of first PATCH")
    created_at: dt.datetime

    def status(self, offset: int, *, complete: bool = False) -> BlobStatus:
        return BlobStatus(
            sha256=self.sha256,
            length=self.length,
            offset=offset,
            complete=complete,
            content_type=self.content_type,
        )


@dataclass
class _KeyLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class BlobStore:
    """SHA-256-addressed blobs under ``root``; see the module docstring for the layout."""

    def __init__(
        self, root: Path, *, max_bytes: int = MAX_BLOB_BYTES, lock_timeout: float = 60.0
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.lock_timeout = lock_timeout
        self._locks: dict[str, _KeyLock] = {}

    # -- what the hub's case logic uses ------------------------------------------------------

    def path_of(self, sha: str) -> Path | None:
        """The verified blob's file, or None if it is not complete (one ``stat`` call)."""
        path = self._object(check_sha256(sha))
        return path if path.is_file() else None

    async def is_complete(self, sha: str) -> bool:
        """True once the blob is stored whole and its SHA-256 verified."""
        return await asyncio.to_thread(self.path_of, sha) is not None

    async def meta(self, sha: str) -> BlobMeta | None:
        """The sidecar of a complete or partial blob (who uploaded it), or None."""
        return await asyncio.to_thread(self._read_meta, check_sha256(sha))

    # -- what the routes use ------------------------------------------------------------------

    async def status(self, sha: str) -> BlobStatus | None:
        """Offset, length and completeness of a declared blob; None if unknown."""
        return await asyncio.to_thread(self._status, check_sha256(sha))

    async def create(
        self, sha: str, length: int, *, node: str, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> tuple[BlobStatus, bool]:
        """Declare an upload; idempotent. Returns its status and whether it was new."""
        check_sha256(sha)
        if length <= 0 or length > self.max_bytes:
            raise BlobTooLarge(f"Upload-Length {length} is not within 1..{self.max_bytes} bytes")
        async with self._locked(sha):
            return await asyncio.to_thread(self._create, sha, length, node, content_type)

    async def append(
        self, sha: str, offset: int, body: AsyncIterable[bytes], size: int, *, node: str
    ) -> BlobStatus:
        """Append ``size`` bytes from ``body`` at ``offset``; verify once the length is reached.

        Bytes that arrived before ``body`` failed (a cut connection) stay written and synced,
        so the next ``status`` shows the progress; the error then propagates.
        """
        check_sha256(sha)
        async with self._locked(sha):
            part, meta = await asyncio.to_thread(self._open_part, sha, offset, size, node)
            written = 0
            try:
                async for piece in body:
                    if written + len(piece) > size:
                        raise BlobTooLarge(f"PATCH body is longer than its {size} bytes")
                    await asyncio.to_thread(part.write, piece)
                    written += len(piece)
            finally:
                await asyncio.shield(asyncio.to_thread(_sync_close, part))
            if written != size:
                raise BlobError(f"PATCH body ended after {written} of {size} bytes")
            if offset + size < meta.length:
                return meta.status(offset + size)
            return await asyncio.to_thread(self._finish, sha, node)

    # -- on disk (these run in a worker thread) ----------------------------------------------

    def _object(self, sha: str) -> Path:
        return self.root / "objects" / sha[:2] / sha

    def _part(self, sha: str) -> Path:
        return self.root / "partial" / f"{sha}.part"

    def _sidecar(self, sha: str) -> Path:
        return self.root / "partial" / f"{sha}.json"

    def _read_meta(self, sha: str) -> BlobMeta | None:
        for path in (self._object(sha).with_suffix(".json"), self._sidecar(sha)):
            with contextlib.suppress(FileNotFoundError):
                return BlobMeta.model_validate_json(path.read_bytes())
        return None

    def _status(self, sha: str) -> BlobStatus | None:
        for _ in range(2):  # a blob may move from partial/ to objects/ between the two looks
            obj = self._object(sha)
            if obj.is_file():
                meta = self._read_meta(sha)
                size = obj.stat().st_size
                ctype = meta.content_type if meta else DEFAULT_CONTENT_TYPE
                return BlobStatus(
                    sha256=sha, length=size, offset=size, complete=True, content_type=ctype
                )
            try:
                meta = BlobMeta.model_validate_json(self._sidecar(sha).read_bytes())
            except FileNotFoundError:
                continue
            try:
                return meta.status(min(self._part(sha).stat().st_size, meta.length))
            except FileNotFoundError:
                continue
        return None

    def _create(
        self, sha: str, length: int, node: str, content_type: str
    ) -> tuple[BlobStatus, bool]:
        current = self._status(sha)
        if current is not None:
            if current.length != length:
                raise LengthConflict(
                    f"blob {sha} was declared with Upload-Length {current.length}, got {length}"
                )
            return current, False
        meta = BlobMeta(
            sha256=sha,
            length=length,
            content_type=content_type,
            created_by=node,
            uploaders=[],
            created_at=dt.datetime.now(dt.UTC),
        )
        partial = self._part(sha).parent
        partial.mkdir(parents=True, exist_ok=True)
        _write_atomic(self._sidecar(sha), meta.model_dump_json().encode())
        with self._part(sha).open("wb") as f:
            os.fsync(f.fileno())
        _fsync_dir(partial)
        log.info("blob %s declared by node %s: %d bytes, %s", sha, node, length, content_type)
        return meta.status(0), True

    def _open_part(self, sha: str, offset: int, size: int, node: str) -> tuple[BinaryIO, BlobMeta]:
        try:
            meta = BlobMeta.model_validate_json(self._sidecar(sha).read_bytes())
            held = self._part(sha).stat().st_size
        except FileNotFoundError:
            if self._object(sha).is_file():
                size_done = self._object(sha).stat().st_size
                raise OffsetMismatch(
                    f"blob {sha} is already complete at {size_done} bytes", size_done
                ) from None
            raise UnknownBlob(f"no upload declared for blob {sha}: POST it first") from None
        if offset != held:
            raise OffsetMismatch(
                f"Upload-Offset {offset} does not match the {held} bytes held", held
            )
        if offset + size > meta.length:
            raise BlobTooLarge(
                f"{size} bytes at offset {offset} would pass the declared length {meta.length}"
            )
        if node not in meta.uploaders:
            meta.uploaders.append(node)
            _write_atomic(self._sidecar(sha), meta.model_dump_json().encode())
        return self._part(sha).open("ab"), meta

    def _finish(self, sha: str, node: str) -> BlobStatus:
        part, sidecar, obj = self._part(sha), self._sidecar(sha), self._object(sha)
        digest = hashlib.sha256()
        with part.open("rb") as f:
            while piece := f.read(_HASH_PIECE):
                digest.update(piece)
        actual = digest.hexdigest()
        if actual != sha:
            part.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            _fsync_dir(part.parent)
            log.warning("blob %s from node %s failed verification: got %s", sha, node, actual)
            raise HashMismatch(sha, actual)
        meta = BlobMeta.model_validate_json(sidecar.read_bytes())
        obj.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(obj.with_suffix(".json"), sidecar.read_bytes())
        os.replace(part, obj)
        _fsync_dir(obj.parent)
        sidecar.unlink(missing_ok=True)
        _fsync_dir(part.parent)
        log.info("blob %s complete from node %s: %d bytes", sha, node, meta.length)
        return meta.status(meta.length, complete=True)

    # -- per-blob locks -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _locked(self, sha: str) -> AsyncIterator[None]:
        entry = self._locks.setdefault(sha, _KeyLock())
        entry.users += 1
        try:
            try:
                async with asyncio.timeout(self.lock_timeout):
                    await entry.lock.acquire()
            except TimeoutError:
                raise BlobBusy(
                    f"blob {sha} is busy with another upload for over {self.lock_timeout}s"
                ) from None
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[sha]


def _sync_close(f: BinaryIO) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
