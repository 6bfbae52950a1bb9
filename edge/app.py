"""The box's composition: store, kiosk web server, zeroconf announcement, presence link and
live reception (whose signaling address and token come with the hub's config command).

``EdgeApp.run()`` runs until cancelled and tears down in reverse order of start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from edge import __version__
from edge.config import EdgeConfig
from edge.discovery import edge_announcer
from edge.kiosk.web import create_app
from edge.live.service import LiveService
from edge.media.recorder import RecordedFile
from edge.store.db import EdgeStore
from edge.sync.presence import PresenceLink
from runtime.config import local_secret, read_secret
from runtime.http import serve

log = logging.getLogger(__name__)


def kiosk_key(config: EdgeConfig) -> bytes:
    """The key signing clerk tokens: ``state_dir/kiosk.key``, made on first start."""
    return local_secret(config.state_dir / "kiosk.key").encode()


class _RecordingsToSync:
    """Stores a finished recording (its chain event and upload staging) and wakes the event
    sender and the blob uploader, so it leaves the box now rather than at the next reconnect."""

    def __init__(self, store: EdgeStore, link: PresenceLink) -> None:
        self.store = store
        self.link = link

    async def add_recording(
        self,
        case_no: str,
        session_id: str,
        rec: RecordedFile,
        *,
        started_at: dt.datetime | None = None,
    ) -> object:
        staged = await self.store.add_recording(case_no, session_id, rec, started_at=started_at)
        self.link.sender.notify()
        self.link.photos.notify()
        return staged


class EdgeApp:
    def __init__(self, config: EdgeConfig, version: str = __version__) -> None:
        self.config = config
        self.version = version
        self.store = EdgeStore(config.database, config.node_id)
        self.link = PresenceLink(config, self.store, version)
        self.live = LiveService(
            config.node_id,
            self.store,
            _RecordingsToSync(self.store, self.link),
            config.media,
            config.media.recordings(config.state_dir),
            config.live,
        )
        self.link.on_signaling = self.live.configure
        self.kiosk_port: int | None = None
        self.ready = asyncio.Event()

    async def _announce(self, port: int) -> None:
        """Announce the box on the LAN until cancelled. Beside the sync link, not before it:
        zeroconf probes the name for about a second before announcing it, and a box that has
        been offline should not wait that long to start sending its backlog."""
        async with edge_announcer(self.config, port, self.version):
            await asyncio.Future()

    async def run(self) -> None:
        config = self.config
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.store)
            self.kiosk_port = port = await stack.enter_async_context(
                serve(
                    create_app(
                        config,
                        self.link,
                        self.store,
                        self.version,
                        kiosk_key(config),
                        read_secret(config.clerk_password_file)
                        if config.clerk_password_file
                        else "",
                        self.live,
                    ),
                    config.kiosk.host,
                    config.kiosk.port,
                )
            )
            self.link.kiosk_port = self.kiosk_port
            log.info(
                "%s: box up, kiosk on http://%s:%d/",
                config.node_id,
                config.kiosk.host,
                self.kiosk_port,
            )
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                if config.discovery.announce:
                    tg.create_task(self._announce(port))
                tg.create_task(self.link.photos.run())
                if config.live.enabled:
                    tg.create_task(self.live.run())
                await self.link.run()
