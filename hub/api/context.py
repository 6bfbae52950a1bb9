"""What the hub's request handlers share, reached through one typed ``AppKey``."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from contracts.access import Claims
from hub.accounts import LoginThrottle
from hub.config import HubConfig
from hub.ingest.link import HubLink
from hub.live import Broadcaster
from hub.pii import PiiVault
from hub.store.db import HubStore
from hub.workflow.engine import Rules
from runtime.http import json_error


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
    rules: Rules


CTX = web.AppKey("ctx", HubContext)
CLAIMS = "xfv.claims"


def ctx(request: web.Request) -> HubContext:
    return request.app[CTX]


def claims(request: web.Request) -> Claims:
    value: Claims = request[CLAIMS]
    return value


def client_of(request: web.Request) -> str:
    return request.remote or "unknown"


error = json_error
"""A JSON error body ``{"error": message, ...}`` with ``status``."""
