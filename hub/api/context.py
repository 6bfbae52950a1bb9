"""What the hub's request handlers share, reached through one typed ``AppKey``."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address

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
    """The client's address: the connecting one, or, when that is a trusted reverse proxy
    (``http.trusted_proxies``), the rightmost address of ``X-Forwarded-For`` that no trusted
    proxy added (the one the outermost proxy saw; addresses left of it are the client's say).

    aiohttp-remotes does not fit: its filtered mode believes the header from anyone, its strict
    mode refuses every request that did not come through the proxies (boxes on the LAN, local
    health checks)."""
    peer = request.remote or "unknown"
    trusted = ctx(request).config.http.trusted_proxies
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _within(address: str, networks: list[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:127.0.0.1 on a dual-stack socket
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


error = json_error
"""A JSON error body ``{"error": message, ...}`` with ``status``."""
