"""The signaling server. Until the live-video work it serves only its health endpoint."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from runtime.http import serve
from signaling import __version__
from signaling.config import SignalingConfig

log = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    return web.json_response(
        {"status": "ok", "service": "signaling", "version": __version__, "rooms": 0}
    )


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/api/v1/health", health)
    return app


class SignalingServer:
    def __init__(self, config: SignalingConfig) -> None:
        self.config = config
        self.port: int | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        http = self.config.http
        async with serve(create_app(), http.host, http.port) as port:
            self.port = port
            log.info("signaling on http://%s:%d/", http.host, port)
            self.ready.set()
            await asyncio.Event().wait()
