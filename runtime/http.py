"""Serving an aiohttp application as an async context manager that reports its real port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web


def json_error(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    """``{"error": message, ...}`` with ``status``; a 401 names the Bearer scheme."""
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="xfv"'
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


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
