"""The box's composition: store, kiosk web server, zeroconf announcement, presence link.

``EdgeApp.run()`` runs until cancelled and tears down in reverse order of start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from edge import __version__
from edge.config import EdgeConfig
from edge.discovery import edge_announcer
from edge.kiosk.web import create_app
from edge.store.db import EdgeStore
from edge.sync.presence import PresenceLink
from runtime.http import serve

log = logging.getLogger(__name__)


class EdgeApp:
    def __init__(self, config: EdgeConfig, version: str = __version__) -> None:
        self.config = config
        self.version = version
        self.store = EdgeStore(config.database)
        self.link = PresenceLink(config, self.store, version)
        self.kiosk_port: int | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        config = self.config
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.store)
            self.kiosk_port = await stack.enter_async_context(
                serve(
                    create_app(config, self.link, self.version),
                    config.kiosk.host,
                    config.kiosk.port,
                )
            )
            self.link.kiosk_port = self.kiosk_port
            if config.discovery.announce:
                await stack.enter_async_context(
                    edge_announcer(config, self.kiosk_port, self.version)
                )
            log.info(
                "%s: box up, kiosk on http://%s:%d/",
                config.node_id,
                config.kiosk.host,
                self.kiosk_port,
            )
            self.ready.set()
            await self.link.run()
