"""The kiosk's local JSON API for cases.

``POST /api/v1/cases`` registers a case: 201 ``{case_no, query_code, registered_at,
possible_duplicates, duplicates_notice}`` once the case and its outbox event are durably
committed, or 422 ``{errors: {field: {code, message}}}``. ``possible_duplicates`` lists the
same ID number's other cases on this box in the last 180 days, newest first;
``duplicates_notice`` says so for the clerk ("此人近期已登记 N 件…", with English), or is null.
It is open to the box's own screen (loopback); from the LAN it needs the clerk's token
(``POST /api/v1/login`` with the clerk password). Every read of stored cases needs the token.

A registration may carry an ``Idempotency-Key`` header (1 to 128 visible ASCII characters; the
kiosk page sends a new one for each registration it submits and the same one when it retries):
a registration whose key was seen before is not made again, its receipt comes back (201, with
``Idempotent-Replayed: true``); the same key with other fields or photos is refused with 409
``key_reused``.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from contracts.access import Audience, Role, bearer_token, mint_token, verify_token
from contracts.cases import validate_case_form
from contracts.errors import InvalidToken
from edge.errors import KeyReused
from edge.kiosk.duplicates import earlier_cases, notice
from edge.kiosk.keys import CLERK_PASSWORD, CONFIG, KEY, LINK, STORE
from runtime.http import json_error

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "::1"}
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_local(request: web.Request) -> bool:
    return request.remote in LOOPBACK


def _clerk(request: web.Request) -> bool:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        return False
    try:
        verify_token(request.app[KEY], token, Audience.API)
    except InvalidToken:
        return False
    return True


def guarded(local_ok: bool) -> Callable[[Handler], Handler]:
    """Allow loopback callers when ``local_ok``; everyone else needs the clerk's token."""

    def wrap(handler: Handler) -> Handler:
        async def inner(request: web.Request) -> web.StreamResponse:
            if (local_ok and _is_local(request)) or _clerk(request):
                return await handler(request)
            log.warning(
                "refused %s %s from %s: no clerk token",
                request.method,
                request.path,
                request.remote,
            )
            return json_error(401, "the clerk's login is needed: POST /api/v1/login")

        return inner

    return wrap


async def login(request: web.Request) -> web.Response:
    password = request.app.get(CLERK_PASSWORD, "")
    if not password:
        return json_error(403, "clerk logins are disabled on this box (no clerk_password_file)")
    try:
        body = await request.json()
    except ValueError:
        return json_error(400, 'body must be JSON: {"password": ...}')
    given = body.get("password") if isinstance(body, dict) else None
    if not isinstance(given, str) or not hmac.compare_digest(given, password):
        log.warning("failed clerk login from %s", request.remote)
        return json_error(401, "wrong clerk password")
    config = request.app[CONFIG]
    token = mint_token(
        request.app[KEY],
        sub="clerk",
        role=Role.OFFICIAL,
        jurisdiction=config.township,
        audience=Audience.API,
        ttl=dt.timedelta(hours=10),
    )
    return web.json_response({"token": token})


@guarded(local_ok=True)
async def register(request: web.Request) -> web.Response:
    try:
        data = await request.json()
    except ValueError:
        return json_error(400, "body must be a JSON object of the case fields")
    if not isinstance(data, dict):
        return json_error(400, "body must be a JSON object of the case fields")
    photos = data.pop("photos", [])
    if not isinstance(photos, list) or not all(isinstance(p, str) for p in photos):
        return web.json_response(
            {
                "errors": {
                    "photos": {"code": "invalid", "message": "photos must be a list of photo ids"}
                }
            },
            status=422,
        )
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        return json_error(
            400, "Idempotency-Key must be 1 to 128 visible ASCII characters", code="bad_key"
        )
    form = validate_case_form(data)
    if isinstance(form, dict):
        return web.json_response({"errors": {k: v.as_dict() for k, v in form.items()}}, status=422)
    config = request.app[CONFIG]
    link = request.app[LINK]
    try:
        receipt = await request.app[STORE].register_case(
            form, config.township, config.box_no, photos, key=key
        )
    except KeyError as exc:
        return web.json_response(
            {"errors": {"photos": {"code": "unknown_photo", "message": str(exc.args[0])}}},
            status=422,
        )
    except KeyReused as exc:
        log.warning("%s: registration refused: %s", config.node_id, exc)
        return json_error(409, str(exc), code="key_reused")
    number, case_no = form.id_number, receipt.case_no
    earlier = await request.app[STORE].run(lambda db: earlier_cases(db, number, exclude=case_no))
    if receipt.replayed:
        log.info("%s: registration of case %s repeated (same key)", config.node_id, case_no)
    else:
        link.sender.notify()
        link.photos.notify()
        log.info("%s: registered case %s (outbox seq %d)", config.node_id, case_no, receipt.seq)
    return web.json_response(
        {
            "case_no": receipt.case_no,
            "query_code": receipt.query_code,
            "registered_at": receipt.registered_at.isoformat(),
            "seq": receipt.seq,
            "possible_duplicates": earlier,
            "duplicates_notice": notice(earlier),
        },
        status=201,
        headers={"Idempotent-Replayed": "true"} if receipt.replayed else None,
    )


@guarded(local_ok=False)
async def list_cases(request: web.Request) -> web.Response:
    rows = await request.app[STORE].cases()
    for row in rows:
        number = str(row["id_number"])
        row["id_number"] = number[:6] + "*" * 8 + number[14:]
    return web.json_response({"cases": rows})


@guarded(local_ok=True)
async def sync_status(request: web.Request) -> web.Response:
    state = await request.app[STORE].sync_state()
    link = request.app[LINK]
    return web.json_response(
        {
            "connected": link.state.connected,
            "hub_online": link.state.hub_online,
            "outbox_head": state.outbox_head,
            "acked_through": state.acked_through,
            "outbox_depth": state.depth,
            "last_event_at": state.last_event_at,
            "broker": link.state.broker,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/login", login)
    app.router.add_post("/api/v1/cases", register)
    app.router.add_get("/api/v1/cases", list_cases)
    app.router.add_get("/api/v1/sync", sync_status)
