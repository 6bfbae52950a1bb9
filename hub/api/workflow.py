"""``/api/v1`` routes of the case workflow: take a step, read a case's deadlines and history,
the 督办 (supervision) list, the reminder inbox, the units, and calendar alerts.

Every route is cut to the caller's jurisdiction; a case outside it is refused with 403 and the
attempt is audited (``case.denied``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError
from sqlite_utils import Database

from contracts.access import Claims, Role
from contracts.divisions import code_range
from contracts.places import place_name
from hub.api.context import claims, client_of, ctx, error
from hub.workflow.calendar import uncovered_years_seen
from hub.workflow.engine import Actor, Step, WorkflowError, apply_step, china_today
from hub.workflow.scanner import OFFICE_PREFIX
from hub.workflow.states import TRANSITIONS, State, allowed

ACCUSATION = "accusation"


def visible(
    who: Claims, township: str, category: str, unit_id: str | None, accusation_roles: list[Role]
) -> bool:
    """Whether ``who`` may see a case at all: in jurisdiction; for a responsible unit's
    handler, routed to their unit; for 检举控告 (accusation) cases, in one of the roles
    configured to see them."""
    return (
        who.covers(township)
        and (who.role is not Role.UNIT or (who.unit is not None and unit_id == who.unit))
        and (category != ACCUSATION or who.role in accusation_roles)
    )


def may_see(request: web.Request, row: dict[str, Any]) -> bool:
    roles = ctx(request).config.workflow.accusation_roles
    return visible(claims(request), row["township"], row["category"], row["unit_id"], roles)


Scope = tuple[list[str], list[Any]]
"""SQL conditions to join with AND, and their arguments."""


def case_scope(request: web.Request, alias: str = "") -> Scope:
    """SQL conditions (and their arguments) on ``cases`` (as ``alias``) that keep exactly the
    rows :func:`visible` lets the caller see."""
    who = claims(request)
    where: list[str] = [f"{alias}township >= ? AND {alias}township < ?"]
    args: list[Any] = list(code_range(who.jur))
    if who.role is Role.UNIT:
        where.append(f"{alias}unit_id = ?")  # NULL for a unit user without a unit: no rows
        args.append(who.unit)
    if hides_accusations(request):
        where.append(f"{alias}category != '{ACCUSATION}'")
    return where, args


async def refuse(request: web.Request, case_no: str) -> web.Response:
    who = claims(request)
    await ctx(request).store.audit(
        who.sub, "case.denied", target=case_no, client=client_of(request)
    )
    return error(403, f"case {case_no!r} is outside your jurisdiction or role")


def actor_of(request: web.Request) -> Actor:
    who = claims(request)
    return Actor(who.sub, who.role, who.jur, who.unit)


def _case_head(db: Database, case_no: str) -> dict[str, Any] | None:
    rows = list(
        db.query(
            "SELECT case_no, township, category, state, track, unit_id, assignee, state_at, "
            "supervised_at, supervised_reason, merged_into, light, next_due FROM cases "
            "WHERE case_no = ?",
            [case_no],
        )
    )
    return rows[0] if rows else None


async def take_step(request: web.Request) -> web.Response:
    """``POST /api/v1/cases/{case_no}/steps`` with a ``Step`` → the chained transition."""
    c, case_no = ctx(request), request.match_info["case_no"]
    try:
        step = Step.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return error(422, f"{where}: {first['msg']}", field=where)
    head = await c.store.run(lambda db: _case_head(db, case_no))
    if head is None:
        return error(404, f"no case {case_no!r}")
    if not may_see(request, head):
        return await refuse(request, case_no)
    actor = actor_of(request)
    now = dt.datetime.now(dt.UTC)
    try:
        row = await c.store.run(lambda db: apply_step(db, c.rules, case_no, actor, step, now))
    except WorkflowError as exc:
        refused = exc
    else:
        case = await c.store.run(lambda db: _case_head(db, case_no))
        return web.json_response(
            {"transition": {**row, "detail": orjson.loads(row["detail"])}, "case": case}
        )
    detail = refused.detail
    if step.action.value == "reply" and "missing" in detail:
        await c.store.run(lambda db: _returned(db, case_no, actor.username, detail, now))
    return error(refused.status, str(refused), **detail)


def _returned(
    db: Database, case_no: str, actor: str, detail: dict[str, Any], now: dt.datetime
) -> None:
    """An incomplete reply leaves a trace on the case's timeline (发回重办 with the gaps)."""
    with db.conn:
        db.execute(
            "INSERT INTO case_timeline (case_no, ts, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
            [
                case_no,
                now.isoformat(timespec="milliseconds"),
                "reply_returned",
                actor,
                orjson.dumps({"missing": detail["missing"]}).decode(),
            ],
        )


def _workflow_of(db: Database, case_no: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    deadlines = list(
        db.query(
            "SELECT kind, started_on, due, day_kind, yellow_days, estimated, state, light, "
            "ended_at, extended_days, extensions FROM deadlines WHERE case_no = ? ORDER BY id",
            [case_no],
        )
    )
    steps = list(
        db.query(
            "SELECT id, action, from_state, to_state, actor, role, note, detail, ts, hash "
            "FROM transitions WHERE case_no = ? ORDER BY id",
            [case_no],
        )
    )
    return deadlines, steps


async def case_workflow(request: web.Request) -> web.Response:
    """``GET /api/v1/cases/{case_no}/workflow``: state, deadlines with lights, the steps taken
    (from the hub's chain), and the steps the caller may take now."""
    c, case_no = ctx(request), request.match_info["case_no"]
    head = await c.store.run(lambda db: _case_head(db, case_no))
    if head is None:
        return error(404, f"no case {case_no!r}")
    if not may_see(request, head):
        return await refuse(request, case_no)
    deadlines, steps = await c.store.run(lambda db: _workflow_of(db, case_no))
    track = c.rules.track(head["track"])
    labels = {rule.kind: (rule.label_zh, rule.label_en) for rule in track.deadlines}
    for d in deadlines:
        d["label_zh"], d["label_en"] = labels.get(d["kind"], (d["kind"], d["kind"]))
        d["estimated"] = bool(d["estimated"])
    state = State(head["state"])
    who = claims(request)
    actions = allowed(state, who.role) if who.role else []
    return web.json_response(
        {
            **head,
            "state_label": state.label_zh,
            "track_name": track.name_zh,
            "deadlines": deadlines,
            "steps": [{**s, "detail": orjson.loads(s["detail"])} for s in steps],
            "actions": [{"action": a.value, "label_zh": a.label_zh} for a in actions],
            "reply_elements": list(c.rules.reply_elements),
        }
    )


def _supervision(db: Database, scope: Scope, today: str) -> list[dict[str, Any]]:
    where, args = scope
    return list(
        db.query(
            "SELECT case_no, township, category, state, unit_id, assignee, light, next_due, "
            "supervised_at, supervised_reason, CAST(julianday(?) - julianday(next_due) AS "
            f"INTEGER) AS overdue_days FROM cases WHERE {' AND '.join(where)} "
            "AND supervised_at IS NOT NULL "
            "ORDER BY next_due IS NULL, next_due, case_no LIMIT 500",
            [today, *args],
        )
    )


def _lights(db: Database, scope: Scope) -> dict[str, int]:
    where, args = scope
    rows = db.execute(
        f"SELECT light, count(*) FROM cases WHERE {' AND '.join(where)} AND light IS NOT NULL "
        "GROUP BY light",
        args,
    )
    return {"green": 0, "yellow": 0, "red": 0} | dict(rows.fetchall())


def hides_accusations(request: web.Request) -> bool:
    return claims(request).role not in ctx(request).config.workflow.accusation_roles


async def supervision(request: web.Request) -> web.Response:
    """``GET /api/v1/supervision``: the 督办 list (overdue or supervised open cases) and the
    count of open cases by light, in the caller's jurisdiction."""
    c, scope = ctx(request), case_scope(request)
    today = china_today(dt.datetime.now(dt.UTC))
    cases = await c.store.read(lambda db: _supervision(db, scope, today.isoformat()))
    lights = await c.store.read(lambda db: _lights(db, scope))
    for row in cases:
        row["township_name"] = place_name(row["township"])
        row["state_label"] = State(row["state"]).label_zh
    return web.json_response({"lights": lights, "cases": cases})


def _recipients(who: Claims) -> tuple[str, list[str]]:
    """The inbox of a user: their own notifications, and for the petition office those of the
    county offices inside their jurisdiction."""
    if who.role is Role.PETITION_OFFICE:
        return "(recipient = ? OR recipient LIKE ? || '%')", [who.sub, OFFICE_PREFIX + who.jur]
    return "recipient = ?", [who.sub]


async def inbox(request: web.Request) -> web.Response:
    """``GET /api/v1/inbox``: the caller's reminders, newest first (console channel)."""
    where, args = _recipients(claims(request))
    rows = await ctx(request).store.run(
        lambda db: list(
            db.query(
                "SELECT id, case_no, kind, recipient, text, created_at, read_at FROM "
                f"notifications WHERE channel = 'console' AND {where} "
                "ORDER BY id DESC LIMIT 200",
                args,
            )
        )
    )
    unread = sum(1 for r in rows if r["read_at"] is None)
    return web.json_response({"unread": unread, "notifications": rows})


async def mark_read(request: web.Request) -> web.Response:
    """``POST /api/v1/inbox/{id}/read``."""
    try:
        nid = int(request.match_info["id"])
    except ValueError:
        return error(400, f"notification id must be a number, got {request.match_info['id']!r}")
    where, args = _recipients(claims(request))
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")

    def write(db: Database) -> int:
        with db.conn:
            return db.execute(
                f"UPDATE notifications SET read_at = coalesce(read_at, ?) WHERE id = ? AND {where}",
                [now, nid, *args],
            ).rowcount

    if not await ctx(request).store.run(write):
        return error(404, f"no notification {nid} in your inbox")
    return web.json_response({"id": nid, "read": True})


async def units(request: web.Request) -> web.Response:
    """``GET /api/v1/units``: responsible units inside or above the caller's jurisdiction (a
    county official routes to county units and to the city's)."""
    jur = claims(request).jur
    rows = await ctx(request).store.run(
        lambda db: list(
            db.query(
                "SELECT id, name_zh, name_en, jurisdiction, supervisor FROM units "
                "WHERE jurisdiction LIKE ? || '%' OR ? LIKE jurisdiction || '%' ORDER BY id",
                [jur, jur],
            )
        )
    )
    return web.json_response({"units": rows})


async def alerts(request: web.Request) -> web.Response:
    """``GET /api/v1/workflow/alerts``: years the holiday calendar does not cover that a
    deadline has reached (counted with weekends only), and how many deadlines are estimates."""
    estimated = await ctx(request).store.run(
        lambda db: db.execute(
            "SELECT count(*) FROM deadlines WHERE estimated = 1 AND state = 'open'"
        ).fetchone()[0]
    )
    years = sorted(uncovered_years_seen())
    messages = [
        f"{y} 年节假日安排尚未收录，期限暂按周末计算，请更新 chinesecalendar" for y in years
    ]
    return web.json_response(
        {"uncovered_years": years, "estimated_deadlines": estimated, "messages": messages}
    )


async def state_machine(request: web.Request) -> web.Response:
    """``GET /api/v1/workflow/states``: every state and action with labels and allowed roles."""
    return web.json_response(
        {
            "states": [{"state": s.value, "label_zh": s.label_zh} for s in State],
            "actions": [
                {
                    "action": t.action.value,
                    "label_zh": t.action.label_zh,
                    "from": sorted(s.value for s in t.sources),
                    "to": t.target.value if t.target else None,
                    "roles": sorted(r.value for r in t.roles),
                }
                for t in TRANSITIONS.values()
            ],
        }
    )


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/cases/{case_no}/steps", take_step)
    r.add_get("/api/v1/cases/{case_no}/workflow", case_workflow)
    r.add_get("/api/v1/supervision", supervision)
    r.add_get("/api/v1/inbox", inbox)
    r.add_post("/api/v1/inbox/{id}/read", mark_read)
    r.add_get("/api/v1/units", units)
    r.add_get("/api/v1/workflow/alerts", alerts)
    r.add_get("/api/v1/workflow/states", state_machine)
