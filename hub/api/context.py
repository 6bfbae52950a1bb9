"""What the hub's request handlers share, reached through one typed ``AppKey``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from contracts.access import Claims
from hub.accounts import LoginThrottle
from hub.config import HubConfig
from hub.ingest.link import HubLink
from hub.live import Broadcaster
from hub.pii import PiiVault
from hub.store.db import HubStore


@dataclass
class HubContext:
    config: HubConfig
    store: HubStore
    key: bytes
    live: Broadcaster
    ingest: HubLink
    vault: PiiVault
    throttle: LoginThrottle
    version: str


CTX = web.AppKey("ctx", HubContext)
CLAIMS = "xfv.claims"


def ctx(request: web.Request) -> HubContext:
    return request.app[CTX]


def claims(request: web.Request) -> Claims:
    value: Claims = request[CLAIMS]
    return value


def client_of(request: web.Request) -> str:
    return request.remote or "unknown"


def error(status: int, message: str, **extra: Any) -> web.Response:
    """A JSON error body ``{"error": message, ...}`` with ``status``."""
    headers = {"WWW-Authenticate": 'Bearer realm="xfv"'} if status == 401 else None
    return web.json_response({"error": message, **extra}, status=status, headers=headers)
