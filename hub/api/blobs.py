"""Mounting the blob store: boxes upload with their blob token; users read photos of the cases
in their jurisdiction with theirs.

A box's token (role ``box``, audience ``blobs``, subject its node id) reaches it on its private
command topic after every birth; it may declare, upload and ask the status of blobs (POST,
PATCH, HEAD, ``/status``), never download one. Blob addresses are SHA-256 digests of content
the hub already knows from the box's case events. Downloads are decided by ``CaseReads``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from aiohttp import web

from contracts.access import Audience, Claims, Role, bearer_token, mint_token, verify_token
from contracts.errors import InvalidToken
from hub.api.auth import console_claims
from hub.api.context import CLAIMS, claims, client_of, ctx, error
from hub.api.workflow import may_see
from hub.blobs.routes import blob_routes
from hub.blobs.store import BlobStore

BOX_TOKEN_TTL = dt.timedelta(days=2)
_PHOTO_CASE = "xfv.photo_case"
"""Request key: the case in the reader's jurisdiction a download is read through."""


def box_token(key: bytes, node: str, township: str, audience: Audience = Audience.BLOBS) -> str:
    """A box's token for ``audience`` (blob uploads, or the signaling server): subject its node
    id, jurisdiction its township; sent with the box's config at every birth."""
    return mint_token(
        key,
        sub=node,
        role=Role.BOX,
        jurisdiction=township,
        audience=audience,
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


def reader_claims(key: bytes, request: web.Request) -> Claims | None:
    """A user's claims from an API bearer token, or from the console's cookie."""
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None:
        try:
            return verify_token(key, token, Audience.API)
        except InvalidToken:
            return None
    return console_claims(request)


class CaseReads:
    """Who may download a blob (``GET /api/v1/blobs/{sha256}``): a user whose jurisdiction
    holds at least one case with that blob among its photos that they may see
    (:func:`hub.api.workflow.visible`: jurisdiction, unit, accusation roles).

    Anyone else gets 404 ``no photo <sha256> in your jurisdiction``, the same answer whether
    or not the blob exists or any case uses it, as ``GET /api/v1/cases/{case_no}`` answers 404
    (never 403) outside the caller's jurisdiction; when some case elsewhere does use the blob,
    the refusal is audited as ``blob.denied`` (like ``case.denied``). No token, or a box's
    blob token: 401. Every download is audited as ``pii.read`` with ``field: photo`` and the
    ``sha256``, its target the case it is read through, like revealing an ID number.
    """

    def __init__(self, key: bytes) -> None:
        self.key = key

    def authorize(self, request: web.Request) -> str | None:
        who = reader_claims(self.key, request)
        if who is None:
            return None
        request[CLAIMS] = who
        return who.sub

    async def admit(self, request: web.Request, sha256: str) -> web.Response | None:
        who, store = claims(request), ctx(request).store
        cases = await store.photo_cases(sha256)
        mine = [case["case_no"] for case in cases if may_see(request, case)]
        if mine:
            request[_PHOTO_CASE] = mine[0]
            return None
        if cases:
            await store.audit(who.sub, "blob.denied", target=sha256, client=client_of(request))
        return error(404, f"no photo {sha256} in your jurisdiction")

    async def served(self, request: web.Request, sha256: str) -> None:
        await ctx(request).store.audit(
            claims(request).sub,
            "pii.read",
            target=request[_PHOTO_CASE],
            client=client_of(request),
            field="photo",
            sha256=sha256,
        )


def add_routes(app: web.Application, store: BlobStore, key: bytes) -> None:
    app.router.add_routes(blob_routes(store, box_authorize(key), read_access=CaseReads(key)))
