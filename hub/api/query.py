"""The petitioner's public query page and its two routes, without an account.

``GET /query`` is the page. ``POST /api/v1/public/query`` ``{case_no, code}`` answers with the
case's plain timeline; an unknown case and a wrong code get the same 404 (nobody learns which
case numbers exist), and too many wrong codes a 429 with ``Retry-After`` (see
``hub.workflow.query`` for the limits). ``POST /api/v1/public/rate`` ``{case_no, code, office,
unit, comment}`` takes the petitioner's rating, once, after a reply.

The query code never reaches a log line or the audit log.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlite_utils import Database

from hub.api.context import client_of, ctx, error
from hub.console.pages import STATIC, html_page
from hub.workflow.engine import WorkflowError
from hub.workflow.query import AlreadyRated, Check, Outcome, Rating, check_code, rate, status

log = logging.getLogger(__name__)

NOT_FOUND = "no case with this case number and query code"
"""One answer for an unknown case and a wrong code."""

M = TypeVar("M", bound=BaseModel)


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    case_no: str = Field(min_length=1, max_length=64, description="the number on the receipt")
    code: str = Field(min_length=1, max_length=32, description="the secret query code")


class RateRequest(QueryRequest):
    office: Rating = Field(description="rating of the petition office (信访部门)")
    unit: Rating = Field(description="rating of the responsible unit (责任单位)")
    comment: str = Field(default="", max_length=500, description="the petitioner's words")


async def _parse(request: web.Request, model: type[M]) -> M | web.Response:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return error(422, f"{where}: {first['msg']}", field=where)


async def _refused(request: web.Request, case_no: str, check: Check) -> web.Response:
    """The answer to a wrong code or a limited caller, logged and audited without the code."""
    client = client_of(request)
    if check.outcome is Outcome.LIMITED:
        log.debug("query for case %s from %s refused: %s limit", case_no, client, check.scope)
        await ctx(request).store.audit(
            None,
            "query.limited",
            target=case_no,
            client=client,
            scope=check.scope,
            retry_after=check.retry_after,
        )
        return error(
            429,
            f"too many wrong query codes; try again in {check.retry_after} s",
            headers={"Retry-After": str(check.retry_after)},
            retry_after=check.retry_after,
        )
    if check.tripped:
        log.warning("wrong query codes for case %s from %s reached a limit", case_no, client)
    return error(404, NOT_FOUND)


async def query_page(request: web.Request) -> web.Response:
    """``GET /query``: the public page (Chinese; ``?lang=en`` for English)."""
    return html_page(STATIC.joinpath("query.html").read_text("utf-8"))


async def public_query(request: web.Request) -> web.Response:
    """``POST /api/v1/public/query``: the case's state and plain timeline for its code."""
    asked = await _parse(request, QueryRequest)
    if isinstance(asked, web.Response):
        return asked
    client, now = client_of(request), dt.datetime.now(dt.UTC)

    def read(db: Database) -> tuple[Check, dict[str, Any] | None]:
        check = check_code(db, asked.case_no, asked.code, client, now)
        return check, status(db, asked.case_no) if check.ok else None

    check, view = await ctx(request).store.run(read)
    if view is None:
        return await _refused(request, asked.case_no, check)
    return web.json_response(view, headers={"Cache-Control": "no-store"})


async def public_rate(request: web.Request) -> web.Response:
    """``POST /api/v1/public/rate``: the petitioner's rating of a replied case, once."""
    asked = await _parse(request, RateRequest)
    if isinstance(asked, web.Response):
        return asked
    c, client, now = ctx(request), client_of(request), dt.datetime.now(dt.UTC)

    def write(db: Database) -> tuple[Check, dict[str, Any] | None]:
        check = check_code(db, asked.case_no, asked.code, client, now)
        if not check.ok:
            return check, None
        rating = rate(
            db, c.rules, asked.case_no, asked.office, asked.unit, asked.comment, client, now
        )
        return check, {**status(db, asked.case_no), "rating": rating}

    try:
        check, view = await c.store.run(write)
    except AlreadyRated as exc:
        return error(409, str(exc), reason="already_rated")
    except WorkflowError as exc:
        if exc.status == 409:
            return error(409, str(exc), reason="not_replied", **exc.detail)
        return error(exc.status, str(exc), **exc.detail)
    if view is None:
        return await _refused(request, asked.case_no, check)
    followup = view["rating"]["followup"]
    log.info("case %s rated by the petitioner (follow-up: %s)", asked.case_no, followup)
    await c.store.audit(
        None,
        "case.rated",
        target=asked.case_no,
        client=client,
        office=asked.office.value,
        unit=asked.unit.value,
        followup=followup,
    )
    return web.json_response(view, status=201)


def add_routes(app: web.Application) -> None:
    """Register this module's routes."""
    r = app.router
    r.add_get("/query", query_page)
    r.add_post("/api/v1/public/query", public_query)
    r.add_post("/api/v1/public/rate", public_rate)
