"""Mounting the blob store: boxes upload with their blob token; officials read with theirs.

A box's token (role ``box``, audience ``blobs``, subject its node id) reaches it on its private
command topic after every birth. Blob addresses are SHA-256 digests of content the hub already
knows from the box's case events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from aiohttp import web

from contracts.access import Audience, Role, bearer_token, mint_token, verify_token
from contracts.errors import InvalidToken
from hub.api.auth import console_claims
from hub.blobs.routes import blob_routes
from hub.blobs.store import BlobStore

BOX_TOKEN_TTL = dt.timedelta(days=2)


def box_token(key: bytes, node: str, township: str) -> str:
    return mint_token(
        key,
        sub=node,
        role=Role.BOX,
        jurisdiction=township,
        audience=Audience.BLOBS,
        ttl=BOX_TOKEN_TTL,
    )


def box_authorize(key: bytes) -> Callable[[web.Request], str | None]:
    def authorize(request: web.Request) -> str | None:
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return None
        try:
            claims = verify_token(key, token, Audience.BLOBS)
        except InvalidToken:
            return None
        return claims.sub if claims.role is Role.BOX else None

    return authorize


def reader_authorize(key: bytes) -> Callable[[web.Request], str | None]:
    """Officials: an API bearer token, or the console's cookie."""

    def authorize(request: web.Request) -> str | None:
        token = bearer_token(request.headers.get("Authorization"))
        if token is not None:
            try:
                return verify_token(key, token, Audience.API).sub
            except InvalidToken:
                return None
        claims = console_claims(request)
        return claims.sub if claims else None

    return authorize


def add_routes(app: web.Application, store: BlobStore, key: bytes) -> None:
    app.router.add_routes(
        blob_routes(store, box_authorize(key), authorize_read=reader_authorize(key))
    )
