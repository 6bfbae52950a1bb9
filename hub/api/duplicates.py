"""Likely duplicates of a case and merging (并案).

``GET /api/v1/cases/{case_no}/duplicates`` lists other open cases that are likely the same
matter (same petitioner by the ID number's keyed hash, same concerned unit, similar content),
cut to the caller's jurisdiction; ID numbers appear masked only. ``POST
/api/v1/cases/{case_no}/merge`` ``{"into": original, "note": ...}`` merges the case into an
original through the workflow engine: the merged case stops, the original keeps its deadlines.

A case outside the caller's jurisdiction is refused with 403 and the attempt is audited
(``case.denied``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlite_utils import Database

from contracts.access import Role
from contracts.cases import Category
from contracts.places import place_name
from hub.api.context import claims, ctx, error
from hub.api.workflow import actor_of, hides_accusations, may_see, refuse
from hub.workflow import duplicates
from hub.workflow.engine import Step, WorkflowError, apply_step
from hub.workflow.states import Action, State

MAX_LIMIT = 50
MAX_DAYS = 730
EXCERPT = 80
"""Characters of each suggested case's content shown beside it."""


def _int_query(request: web.Request, key: str, default: int, top: int) -> int | web.Response:
    raw = request.query.get(key, str(default))
    try:
        value = int(raw)
    except ValueError:
        return error(400, f"{key} must be a whole number, got {raw!r}")
    if not 1 <= value <= top:
        return error(400, f"{key} must be 1-{top}, got {value}")
    return value


def _case(db: Database, case_no: str) -> dict[str, Any] | None:
    rows = list(
        db.query(
            "SELECT case_no, township, category, unit_id, state, merged_into FROM cases "
            "WHERE case_no = ?",
            [case_no],
        )
    )
    return rows[0] if rows else None


def _shown(db: Database, case_nos: list[str]) -> dict[str, dict[str, Any]]:
    """What the console shows beside each suggested case (ID number masked only)."""
    if not case_nos:
        return {}
    marks = ", ".join("?" * len(case_nos))
    rows = db.query(
        f"SELECT case_no, name, id_masked, concerned_unit, content, category FROM cases "
        f"WHERE case_no IN ({marks})",
        case_nos,
    )
    return {r["case_no"]: r for r in rows}


async def list_duplicates(request: web.Request) -> web.Response:
    who, case_no = claims(request), request.match_info["case_no"]
    limit = _int_query(request, "limit", 10, MAX_LIMIT)
    days = _int_query(request, "days", duplicates.DAYS, MAX_DAYS)
    if isinstance(limit, web.Response):
        return limit
    if isinstance(days, web.Response):
        return days
    hidden = (Category.ACCUSATION.value,) if hides_accusations(request) else ()

    def read(
        db: Database,
    ) -> tuple[dict[str, Any] | None, list[duplicates.Suggestion], dict[str, dict[str, Any]]]:
        case = _case(db, case_no)
        # a unit's handler sees their own cases only, so no suggestions (merging is the
        # petition office's step)
        if case is None or who.role is Role.UNIT or not may_see(request, case):
            return case, [], {}
        found = duplicates.suggest(
            db, case_no, limit=limit, days=days, within=who.jur, hidden_categories=hidden
        )
        return case, found, _shown(db, [s.case_no for s in found])

    case, found, shown = await ctx(request).store.run(read)
    if case is None:
        return error(404, f"no case {case_no!r}")
    if not may_see(request, case):
        return await refuse(request, case_no)
    suggestions = []
    for s in found:
        extra = shown.get(s.case_no, {})
        suggestions.append(
            {
                "case_no": s.case_no,
                "township": s.township,
                "township_name": place_name(s.township),
                "registered_at": s.registered_at,
                "state": s.state,
                "state_label_zh": State(s.state).label_zh,
                "score": s.score,
                "text_similarity": s.text_similarity,
                "reasons": [
                    {"code": r.code, "label_zh": r.label_zh, "label_en": r.label_en}
                    for r in s.labelled()
                ],
                "name": extra.get("name"),
                "id_masked": extra.get("id_masked"),
                "concerned_unit": extra.get("concerned_unit"),
                "excerpt": (extra.get("content") or "")[:EXCERPT],
            }
        )
    return web.json_response(
        {
            "case_no": case_no,
            "state": case["state"],
            "merged_into": case["merged_into"],
            "days": days,
            "suggestions": suggestions,
        }
    )


async def merge(request: web.Request) -> web.Response:
    c, case_no = ctx(request), request.match_info["case_no"]
    try:
        body = await request.json()
    except ValueError:
        return error(400, 'body must be JSON: {"into": "<original case number>", "note": "..."}')
    if not isinstance(body, dict) or not isinstance(body.get("into"), str):
        return error(422, "merge needs 'into', the original case's number", field="into")
    try:
        step = Step(action=Action.MERGE, into=body["into"], note=body.get("note", ""))
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        return error(422, "; ".join(problems))
    rules, now, actor = c.rules, dt.datetime.now(dt.UTC), actor_of(request)

    def write(db: Database) -> tuple[str, dict[str, Any] | None]:
        case = _case(db, case_no)
        if case is None:
            return "missing", None
        if not may_see(request, case):
            return "denied", None
        original = _case(db, step.into or "")
        if original is not None and not may_see(request, original):
            return "into_denied", None
        return "ok", apply_step(db, rules, case_no, actor, step, now)

    try:
        outcome, transition = await c.store.run(write)
    except WorkflowError as exc:
        return error(exc.status, str(exc), **exc.detail)
    if outcome == "missing":
        return error(404, f"no case {case_no!r}")
    if outcome == "denied":
        return await refuse(request, case_no)
    if outcome == "into_denied":
        return await refuse(request, str(step.into))
    assert transition is not None
    return web.json_response(
        {
            "case_no": case_no,
            "state": transition["to_state"],
            "merged_into": step.into,
            "transition": {
                "id": transition["id"],
                "ts": transition["ts"],
                "hash": transition["hash"],
            },
        }
    )


def add_routes(app: web.Application) -> None:
    """Register this module's routes."""
    app.router.add_get("/api/v1/cases/{case_no}/duplicates", list_duplicates)
    app.router.add_post("/api/v1/cases/{case_no}/merge", merge)
