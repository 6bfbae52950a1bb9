"""Serving an aiohttp application as an async context manager that reports its real port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def serve(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` (0 picks a free port) and yield the bound port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound = port
        for address in runner.addresses:  # (host, port[, ...]) of each listening socket
            bound = int(address[1])
            break
        yield bound
    finally:
        await runner.cleanup()
