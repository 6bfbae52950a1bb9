"""Login (JSON and console form), logout, and the middleware that guards ``/api/v1``.

API clients send ``Authorization: Bearer <token>`` (audience ``api``); the console sends its
session cookie (audience ``console``, HttpOnly, SameSite=Strict), accepted for reads, and for
writes only with the ``X-Xfv-Console: 1`` header.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from contracts.access import Audience, Claims, bearer_token, mint_token, verify_token
from contracts.blobs import BLOBS_PATH
from contracts.errors import InvalidToken
from hub.accounts import authenticate
from hub.api.context import CLAIMS, HubContext, client_of, ctx, error
from hub.store.db import User

log = logging.getLogger(__name__)

COOKIE = "xfv_session"
PUBLIC = frozenset({"/api/v1/health", "/api/v1/login"})
PUBLIC_PREFIX = "/api/v1/public/"
"""Routes for petitioners, without an account (the case query); they limit their own callers."""
CONSOLE_HEADER = "X-Xfv-Console"
"""The console's own writes send this header with the session cookie: a cross-site page
cannot add it without a CORS preflight, which the hub never grants (CSRF)."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def issue(c: HubContext, user: User, audience: Audience) -> tuple[str, dt.datetime]:
    ttl = dt.timedelta(minutes=c.config.auth.token_ttl_minutes)
    now = dt.datetime.now(dt.UTC)
    token = mint_token(
        c.key,
        sub=user.username,
        role=user.role,
        jurisdiction=user.jurisdiction,
        audience=audience,
        ttl=ttl,
        now=now,
        unit=user.unit_id,
    )
    return token, now + ttl


def console_claims(request: web.Request) -> Claims | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        return verify_token(ctx(request).key, token, Audience.CONSOLE)
    except InvalidToken:
        return None


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if (
        not path.startswith("/api/v1/")
        or path in PUBLIC
        or path.startswith((PUBLIC_PREFIX, BLOBS_PATH + "/"))
    ):
        # Blob routes check their own callers: boxes with blob tokens, officials to read.
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if header:
        token = bearer_token(header)
        if token is None:
            return error(401, "Authorization header must be 'Bearer <token>'")
        try:
            request[CLAIMS] = verify_token(ctx(request).key, token, Audience.API)
        except InvalidToken as exc:
            return error(401, str(exc))
        return await handler(request)
    if (request.method in ("GET", "HEAD") or request.headers.get(CONSOLE_HEADER) == "1") and (
        claims := console_claims(request)
    ):
        request[CLAIMS] = claims
        return await handler(request)
    return error(
        401, "missing bearer token: POST /api/v1/login, then send 'Authorization: Bearer <token>'"
    )


async def _check(request: web.Request, username: str, password: str) -> User | web.Response:
    c, client = ctx(request), client_of(request)
    if c.throttle.blocked(username, client):
        await c.store.audit(username, "login.throttled", client=client)
        return error(429, "too many failed logins; wait 5 minutes")
    user = await authenticate(c.store, username, password)
    if user is None:
        c.throttle.failed(username, client)
        await c.store.audit(username, "login.failed", client=client)
        log.warning("failed login for %r from %s", username, client)
        return error(401, "invalid username or password")
    c.throttle.succeeded(username, client)
    await c.store.audit(username, "login", client=client)
    return user


async def api_login(request: web.Request) -> web.Response:
    """``POST /api/v1/login`` ``{"username", "password"}`` → a bearer token."""
    try:
        body = await request.json()
    except ValueError:
        return error(400, 'body must be JSON: {"username": ..., "password": ...}')
    if not isinstance(body, dict) or not all(
        isinstance(body.get(k), str) and body.get(k) for k in ("username", "password")
    ):
        return error(400, "body must have non-empty string fields 'username' and 'password'")
    outcome = await _check(request, body["username"], body["password"])
    if isinstance(outcome, web.Response):
        return outcome
    token, expires = issue(ctx(request), outcome, Audience.API)
    return web.json_response(
        {
            "token": token,
            "token_type": "Bearer",
            "expires_at": expires.isoformat(),
            "username": outcome.username,
            "role": outcome.role.value,
            "jurisdiction": outcome.jurisdiction,
        }
    )


async def console_login(request: web.Request) -> web.Response:
    """``POST /login`` from the console's form: a session cookie and a redirect."""
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    lang = "&lang=en" if form.get("lang") == "en" else ""
    if not username or not password:
        raise web.HTTPSeeOther(f"/login?error=missing{lang}")
    outcome = await _check(request, username, password)
    if isinstance(outcome, web.Response):
        code = "throttled" if outcome.status == 429 else "invalid"
        raise web.HTTPSeeOther(f"/login?error={code}{lang}")
    c = ctx(request)
    token, _ = issue(c, outcome, Audience.CONSOLE)
    resp = web.HTTPSeeOther("/" + (lang and "?lang=en"))
    resp.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=c.config.auth.cookie_secure,
        max_age=c.config.auth.token_ttl_minutes * 60,
        path="/",
    )
    raise resp


async def console_logout(request: web.Request) -> web.Response:
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(COOKIE, path="/")
    raise resp
