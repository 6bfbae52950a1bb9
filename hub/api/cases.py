"""``/api/v1/cases``: the cases projected from the boxes' events, cut to the caller's
jurisdiction. ID numbers are shown masked; ``?reveal=id_number`` on one case shows the full
number and writes the read to the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from sqlite_utils import Database

from contracts.access import Role
from contracts.cases import Category
from contracts.divisions import code_range, parse_division
from contracts.errors import ContractError
from contracts.places import place_name
from contracts.topics import check_id
from hub.api.context import claims, client_of, ctx, error
from hub.api.workflow import case_scope, may_see, refuse
from hub.workflow.states import State

LIST_COLUMNS = (
    "case_no, node, township, registered_at, name, id_masked, category, concerned_unit, "
    "state, photos_total, photos_verified, complete, unit_id, light, next_due, supervised_at"
)
LIGHTS = ("green", "yellow", "red")
MAX_LIMIT = 200


def _filters(request: web.Request) -> tuple[str, list[Any]] | web.Response:
    q = request.query
    where, args = case_scope(request)
    for key in ("township", "county"):
        if key in q:
            try:
                code = parse_division(q[key]).code
            except ContractError as exc:
                return error(400, f"{key}: {exc}")
            where.append("township >= ? AND township < ?")
            args.extend(code_range(code))
    for key, op in (("date_from", ">="), ("date_to", "<")):
        if key in q:
            try:
                day = dt.date.fromisoformat(q[key])
            except ValueError:
                return error(400, f"{key} must be YYYY-MM-DD, got {q[key]!r}")
            where.append(f"registered_at {op} ?")
            args.append(day.isoformat())
    if "category" in q:
        if q["category"] not in {c.value for c in Category}:
            return error(400, f"category must be one of {[c.value for c in Category]}")
        where.append("category = ?")
        args.append(q["category"])
    if "state" in q:
        if q["state"] not in {s.value for s in State}:
            return error(400, f"state must be one of {[s.value for s in State]}")
        where.append("state = ?")
        args.append(q["state"])
    if "light" in q:
        if q["light"] not in LIGHTS:
            return error(400, f"light must be one of {list(LIGHTS)}, got {q['light']!r}")
        where.append("light = ?")
        args.append(q["light"])
    if q.get("supervised") == "1":
        where.append("supervised_at IS NOT NULL")
    if "unit_id" in q:
        where.append("unit_id = ?")
        args.append(q["unit_id"])
    if "node" in q:
        try:
            node = check_id(q["node"])
        except ContractError as exc:
            return error(400, f"node: {exc}")
        where.append("node = ?")
        args.append(node)
    return " AND ".join(where), args


def _page(request: web.Request) -> tuple[int, int] | web.Response:
    try:
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        return error(400, "limit and offset must be whole numbers")
    if not (1 <= limit <= MAX_LIMIT) or offset < 0:
        return error(400, f"limit must be 1-{MAX_LIMIT} and offset >= 0")
    return limit, offset


def _named(row: dict[str, Any]) -> dict[str, Any]:
    row["township_name"] = place_name(row["township"])
    row["complete"] = bool(row["complete"])
    row["state_label"] = State(row["state"]).label_zh
    return row


async def list_cases(request: web.Request) -> web.Response:
    filters, page = _filters(request), _page(request)
    if isinstance(filters, web.Response):
        return filters
    if isinstance(page, web.Response):
        return page
    (where, args), (limit, offset) = filters, page

    def read(db: Database) -> tuple[int, list[dict[str, Any]]]:
        total = db.execute(f"SELECT count(*) FROM cases WHERE {where}", args).fetchone()[0]
        rows = db.query(
            f"SELECT {LIST_COLUMNS} FROM cases WHERE {where} "
            "ORDER BY registered_at DESC, case_no LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return int(total), [_named(r) for r in rows]

    total, rows = await ctx(request).store.read(read)
    return web.json_response({"total": total, "limit": limit, "offset": offset, "cases": rows})


async def get_case(request: web.Request) -> web.Response:
    c, who = ctx(request), claims(request)
    case_no = request.match_info["case_no"]

    def read(
        db: Database,
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]:
        rows = list(db.query("SELECT * FROM cases WHERE case_no = ?", [case_no]))
        if not rows:
            return None, [], []
        photos = list(
            db.query(
                "SELECT sha256, size, mime, verified FROM case_photos WHERE case_no = ?", [case_no]
            )
        )
        events = list(
            db.query(
                "SELECT ts, kind, actor, detail FROM case_timeline WHERE case_no = ? ORDER BY id",
                [case_no],
            )
        )
        return rows[0], photos, events

    row, photos, timeline = await c.store.run(read)
    if row is None:
        return error(404, f"no case {case_no!r}")
    if not may_see(request, row):
        return await refuse(request, case_no)
    id_enc = row.pop("id_enc")
    row.pop("query_code_hash")
    row.pop("id_hmac")
    if request.query.get("reveal") == "id_number":
        row["id_number"] = c.vault.open_id(id_enc)
        await c.store.audit(
            who.sub, "pii.read", target=case_no, client=client_of(request), field="id_number"
        )
    return web.json_response({**_named(row), "photos": photos, "timeline": timeline})


async def list_streams(request: web.Request) -> web.Response:
    """Each box's sync state at the hub: head seq, chain flag, held events. Admins also see
    streams of boxes that never sent a birth (and so have no known township)."""
    who = claims(request)
    streams = await ctx(request).store.streams()
    edges = {e["node"] for e in await ctx(request).store.edges(who.jur)}
    shown = [s for n, s in sorted(streams.items()) if n in edges or who.role is Role.ADMIN]
    return web.json_response({"streams": shown})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/cases", list_cases)
    app.router.add_get("/api/v1/cases/{case_no}", get_case)
    app.router.add_get("/api/v1/streams", list_streams)
