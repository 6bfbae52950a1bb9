"""Uploading the box's blobs to the hub: photos of registered cases and session recordings.

The hub tells the box where and with which token to upload (a ``config`` command on the box's
own command topic, which the broker ACL keeps private to it). Blobs go up one at a time
(photos first: they are small and complete the case record), resumably, under one bandwidth
cap shared by all of them so uploads stay below the live video, and each is marked uploaded
only when the hub has verified its SHA-256. Whatever adds a blob to the store (registering a
case, ``EdgeStore.add_recording``) calls ``notify``; at start the queue is read anyway.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from edge.store.db import EdgeStore, StagedBlob
from edge.sync.uploader import RateLimiter, RetryPolicy, UploadError, upload_blob
from runtime.mqtt import Backoff

log = logging.getLogger(__name__)


class BlobUploader:
    """Uploads every staged blob of ``store`` (``EdgeStore.blobs_to_upload``) to the hub, at
    most ``rate_bps`` bytes/s in all (None: uncapped). ``run`` loops until cancelled."""

    def __init__(
        self,
        node: str,
        store: EdgeStore,
        rate_bps: int | None,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.node = node
        self.store = store
        self.rate_bps = rate_bps
        self.retry = retry
        self.url: str | None = None
        self.token: str | None = None
        self.uploaded = 0
        self._limiter = RateLimiter(rate_bps) if rate_bps is not None else None
        self._wake = asyncio.Event()

    def configure(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token
        self._wake.set()

    def notify(self) -> None:
        """New blobs are staged."""
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(1.0, 60.0)
        async with aiohttp.ClientSession() as session:
            while True:
                self._wake.clear()
                pending = await self.store.blobs_to_upload() if self.token else []
                for blob in pending:
                    try:
                        await self._upload(session, blob)
                    except (UploadError, aiohttp.ClientError, OSError) as exc:
                        delay = backoff.next_delay()
                        log.warning(
                            "%s: %s %s upload failed: %s; retry in %.0fs",
                            self.node,
                            blob.kind,
                            blob.sha256[:12],
                            exc,
                            delay,
                        )
                        await asyncio.sleep(delay)
                        break
                    await self.store.mark_blob_uploaded(blob)
                    self.uploaded += 1
                    backoff.reset()
                else:
                    await self._wake.wait()

    async def _upload(self, session: aiohttp.ClientSession, blob: StagedBlob) -> None:
        assert self.url is not None and self.token is not None
        await upload_blob(
            session,
            self.url,
            blob.path,
            blob.sha256,
            self.token,
            rate_bps=None,
            limiter=self._limiter,
            content_type=blob.mime,
            retry=self.retry,
        )
        log.info("%s: %s %s verified by the hub", self.node, blob.kind, blob.sha256[:12])


PhotoUploader = BlobUploader
"""The name ``edge.sync.presence`` knows it by (it uploads recordings too)."""
