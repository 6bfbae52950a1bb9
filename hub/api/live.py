"""Live reception at the hub's API: tokens, the sessions record, and case notes.

- ``POST /api/v1/live/token``: a SIGNALING token for a signed-in user (503 while live
  reception is off); the box's signaling token goes with its config after every birth
  (:func:`hub.api.blobs.box_token` with the SIGNALING audience).
- ``GET /api/v1/live/sessions?case_no=&live=1&limit=``: sessions (newest first) of cases the
  caller may see (``hub.api.workflow.visible``: jurisdiction, unit, accusation roles).
- ``GET /api/v1/live/sessions/{session_id}``: one session; with its monitor ``views`` for the
  roles in ``VIEW_ROLES`` only (monitors and admins). Silent monitoring stays silent: an
  official, a petition office or a unit never learns who watched (the audit log has it).
- ``POST /api/v1/cases/{case_no}/notes`` ``{text}`` (1-2000 characters): a ``note`` on the
  case timeline with the caller as actor (the console's call page saves its notes box here).

A SIGNALING token carries the holder's role, jurisdiction and unit; the signaling server
(``signaling/``) checks it with the hub's key. A user's token is short-lived: the console
asks for a fresh one for every (re)connection of its WebSocket.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from sqlite_utils import Database

from contracts.access import Audience, Role, mint_token
from contracts.cases import CASE_NO_RE
from contracts.divisions import code_range
from contracts.places import place_name
from contracts.signaling import RELAY_SUBJECT
from hub.api.context import claims, ctx, error
from hub.api.workflow import may_see, refuse, visible
from hub.config import HubConfig
from hub.store import live as store

LIVE_TOKEN_TTL = dt.timedelta(minutes=10)
"""A user's signaling token only has to last until its socket is connected."""


def signaling_url(config: HubConfig) -> str | None:
    """Where browsers and boxes open the signaling WebSocket (``signaling.url``); ``None``
    when live reception is off."""
    return config.signaling.url or None


async def live_token(request: web.Request) -> web.Response:
    """``POST /api/v1/live/token`` → ``{token, expires_at, signaling_url, role,
    jurisdiction}``: a SIGNALING token for the caller, never outliving the caller's own."""
    cl = claims(request)
    if cl.role is Role.BOX:
        return error(403, "a box gets its signaling token with its config, not here")
    if cl.sub == RELAY_SUBJECT:
        return error(403, f"username {RELAY_SUBJECT!r} is reserved for the media relay")
    c = ctx(request)
    url = signaling_url(c.config)
    if url is None:
        return error(503, "live reception is off on this hub (signaling.url is not configured)")
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
            "signaling_url": url,
            "role": cl.role.value,
            "jurisdiction": cl.jur,
        }
    )


VIEW_ROLES = frozenset({Role.MONITOR, Role.ADMIN})
"""Who sees which monitors watched a session."""
MAX_SESSIONS = 200
NOTE_MAX = 2000


def _session(request: web.Request, row: dict[str, Any]) -> dict[str, Any] | None:
    """The row as the caller may see it (``None``: not at all)."""
    who = claims(request)
    roles = ctx(request).config.workflow.accusation_roles
    if not visible(who, row["township"], row.pop("category") or "", row.pop("unit_id"), roles):
        return None
    row["township_name"] = place_name(row["township"])
    row["live"] = row["ended_at"] is None
    return row


async def list_sessions(request: web.Request) -> web.Response:
    """``GET /api/v1/live/sessions``: ``?case_no=``, ``?live=1`` (not ended), ``?limit=``."""
    q = request.query
    who = claims(request)
    where = ["s.township >= ? AND s.township < ?"]
    args: list[Any] = list(code_range(who.jur))
    if "case_no" in q:
        if not CASE_NO_RE.fullmatch(q["case_no"]):
            return error(400, f"case_no is not a case number: {q['case_no']!r}")
        where.append("s.case_no = ?")
        args.append(q["case_no"])
    if q.get("live") == "1":
        where.append("s.ended_at IS NULL")
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        return error(400, f"limit must be a whole number, got {q['limit']!r}")
    if not 1 <= limit <= MAX_SESSIONS:
        return error(400, f"limit must be 1-{MAX_SESSIONS}, got {limit}")
    rows = await ctx(request).store.run(lambda db: store.list_sessions(db, where, args, limit))
    sessions = [s for row in rows if (s := _session(request, row)) is not None]
    return web.json_response({"sessions": sessions})


async def get_session(request: web.Request) -> web.Response:
    """``GET /api/v1/live/sessions/{session_id}``: the session, and its monitor views for
    ``VIEW_ROLES``."""
    session_id = request.match_info["session_id"]

    def read(db: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rows = store.list_sessions(db, ["s.session_id = ?"], [session_id], 1)
        return rows, store.session_views(db, session_id) if rows else []

    rows, views = await ctx(request).store.run(read)
    if not rows:
        return error(404, f"no live session {session_id!r}")
    session = _session(request, rows[0])
    if session is None:
        return await refuse(request, rows[0]["case_no"])
    if claims(request).role in VIEW_ROLES:
        session["views"] = views
    return web.json_response(session)


async def add_note(request: web.Request) -> web.Response:
    """``POST /api/v1/cases/{case_no}/notes`` ``{text}`` → 201 and the timeline row."""
    c, who = ctx(request), claims(request)
    case_no = request.match_info["case_no"]
    try:
        body = await request.json()
    except ValueError:
        return error(400, 'the body must be JSON: {"text": "..."}')
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        return error(422, "text: a note needs text (1-2000 characters)", field="text")
    text = text.strip()
    if len(text) > NOTE_MAX:
        return error(
            422, f"text: {len(text)} characters; a note has at most {NOTE_MAX}", field="text"
        )
    head = await c.store.run(
        lambda db: list(
            db.query(
                "SELECT case_no, township, category, unit_id FROM cases WHERE case_no = ?",
                [case_no],
            )
        )
    )
    if not head:
        return error(404, f"no case {case_no!r}")
    if not may_see(request, head[0]):
        return await refuse(request, case_no)
    now = dt.datetime.now(dt.UTC)
    row = await c.store.run(lambda db: store.add_note(db, case_no, who.sub, text, now))
    return web.json_response({**row, "detail": {"text": text}}, status=201)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/live/token", live_token)
    app.router.add_get("/api/v1/live/sessions", list_sessions)
    app.router.add_get("/api/v1/live/sessions/{session_id}", get_session)
    app.router.add_post("/api/v1/cases/{case_no}/notes", add_note)
