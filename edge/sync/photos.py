"""Uploading the box's photos to the hub once their case is registered.

The hub tells the box where and with which token to upload (a ``config`` command on the box's
own command topic, which the broker ACL keeps private to it). Photos go up one at a time,
resumably, below the configured bandwidth cap, and are marked uploaded only when the hub has
verified their SHA-256.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from edge.store.db import EdgeStore
from edge.sync.uploader import UploadError, upload_blob
from runtime.mqtt import Backoff

log = logging.getLogger(__name__)


class PhotoUploader:
    def __init__(self, node: str, store: EdgeStore, rate_bps: int | None) -> None:
        self.node = node
        self.store = store
        self.rate_bps = rate_bps
        self.url: str | None = None
        self.token: str | None = None
        self.uploaded = 0
        self._wake = asyncio.Event()

    def configure(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token
        self._wake.set()

    def notify(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(1.0, 60.0)
        async with aiohttp.ClientSession() as session:
            while True:
                self._wake.clear()
                pending = await self.store.photos_to_upload() if self.token else []
                for sha, path, mime in pending:
                    assert self.url is not None and self.token is not None
                    try:
                        await upload_blob(
                            session,
                            self.url,
                            path,
                            sha,
                            self.token,
                            rate_bps=self.rate_bps,
                            content_type=mime,
                        )
                    except (UploadError, aiohttp.ClientError, OSError) as exc:
                        delay = backoff.next_delay()
                        log.warning(
                            "%s: photo %s upload failed: %s; retry in %.0fs",
                            self.node,
                            sha[:12],
                            exc,
                            delay,
                        )
                        await asyncio.sleep(delay)
                        break
                    await self.store.mark_photo_uploaded(sha)
                    self.uploaded += 1
                    backoff.reset()
                else:
                    await self._wake.wait()
