"""Tokens for live reception: ``POST /api/v1/live/token`` for signed-in users, and the box's
signaling token sent with its config after every birth.

A SIGNALING token carries the holder's role, jurisdiction and unit; the signaling server
(``signaling/``) checks it with the hub's key. A user's token is short-lived: the console
asks for a fresh one for every (re)connection of its WebSocket.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from aiohttp import web

from contracts.access import Audience, Role, mint_token
from contracts.signaling import RELAY_SUBJECT
from hub.api.context import claims, ctx, error
from hub.config import HubConfig

LIVE_TOKEN_TTL = dt.timedelta(minutes=10)
"""A user's signaling token only has to last until its socket is connected."""
BOX_SIGNALING_TTL = dt.timedelta(days=2)
"""Like the blob token: renewed with the box's config at every birth."""
SIGNALING_PORT = 8001
"""The signaling server's default port (``SignalingConfig.http``)."""
SIGNALING_PATH = "/ws"


def signaling_url(config: HubConfig) -> str:
    """Where browsers and boxes open the signaling WebSocket.

    PLACEHOLDER until ``HubConfig`` has its own ``signaling_url`` field: the hub's host (from
    ``public_url``, else ``http.host``) on the signaling server's default port, ``wss`` when
    the hub is reached over HTTPS."""
    public = urlsplit(config.public_url) if config.public_url else None
    host = (public.hostname if public else None) or config.http.host
    scheme = "wss" if public is not None and public.scheme == "https" else "ws"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{SIGNALING_PORT}{SIGNALING_PATH}"


def box_signaling_token(key: bytes, node: str, township: str) -> str:
    """A box's SIGNALING token: subject its node id, jurisdiction its township."""
    return mint_token(
        key,
        sub=node,
        role=Role.BOX,
        jurisdiction=township,
        audience=Audience.SIGNALING,
        ttl=BOX_SIGNALING_TTL,
    )


async def live_token(request: web.Request) -> web.Response:
    """``POST /api/v1/live/token`` → ``{token, expires_at, signaling_url, role,
    jurisdiction}``: a SIGNALING token for the caller, never outliving the caller's own."""
    cl = claims(request)
    if cl.role is Role.BOX:
        return error(403, "a box gets its signaling token with its config, not here")
    if cl.sub == RELAY_SUBJECT:
        return error(403, f"username {RELAY_SUBJECT!r} is reserved for the media relay")
    c = ctx(request)
    now = dt.datetime.now(dt.UTC)
    expires = min(now + LIVE_TOKEN_TTL, dt.datetime.fromtimestamp(cl.exp, dt.UTC))
    if expires <= now:
        return error(401, "your sign-in has expired; sign in again")
    token = mint_token(
        c.key,
        sub=cl.sub,
        role=cl.role,
        jurisdiction=cl.jur,
        audience=Audience.SIGNALING,
        ttl=expires - now,
        now=now,
        unit=cl.unit,
    )
    return web.json_response(
        {
            "token": token,
            "expires_at": expires.isoformat(),
            "signaling_url": signaling_url(c.config),
            "role": cl.role.value,
            "jurisdiction": cl.jur,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/live/token", live_token)
