"""``/api/v1/health``, ``/api/v1/me``, ``/api/v1/edges`` (list, one, live stream) and
``/api/v1/quarantine``. Every list is cut to the caller's jurisdiction."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from contracts.access import Role
from contracts.divisions import Tier, parse_division
from contracts.places import place_name
from contracts.signaling import QUEUE_ROLES, WATCH_ROLES
from hub.api.context import claims, ctx, error
from hub.store.db import EdgeRow

KEEPALIVE_SECONDS = 15.0


def present(row: EdgeRow) -> dict[str, Any]:
    """A registry row as the API shows it, with the place names for grouping."""
    township = parse_division(row["township"])
    county = township.at(Tier.COUNTY).code
    return {
        "node": row["node"],
        "online": row["online"],
        "township": township.code,
        "township_name": place_name(township.code),
        "township_name_en": place_name(township.code, "en"),
        "county": county,
        "county_name": place_name(county),
        "county_name_en": place_name(county, "en"),
        "version": row["version"],
        "bd_seq": row["bd_seq"],
        "kiosk_port": row["kiosk_port"],
        "first_seen_at": row["first_seen_at"],
        "last_birth_at": row["last_birth_at"],
        "last_seen_at": row["last_seen_at"],
        "offline_at": row["offline_at"],
        "telemetry": row["telemetry"],
        "telemetry_at": row["telemetry_at"],
        "sync": {
            "acked_through": row.get("head_seq") or 0,
            "outbox_depth": (row["telemetry"] or {}).get("outbox_depth"),
            "chain_ok": row.get("chain_ok") is None or bool(row["chain_ok"]),
            "break_seq": row.get("break_seq"),
            "break_reason": row.get("break_reason"),
            "held": row.get("held") or 0,
            "last_event_at": row.get("last_event_at"),
        },
    }


async def health(request: web.Request) -> web.Response:
    c = ctx(request)
    edges = await c.store.edges()
    return web.json_response(
        {
            "status": "ok",
            "hub": c.config.hub_id,
            "version": c.version,
            "broker_connected": c.ingest.connected,
            "edges_total": len(edges),
            "edges_online": sum(1 for e in edges if e["online"]),
        }
    )


async def me(request: web.Request) -> web.Response:
    cl = claims(request)
    return web.json_response(
        {
            "username": cl.sub,
            "role": cl.role.value,
            "role_name": cl.role.label_zh,
            "jurisdiction": cl.jur,
            "jurisdiction_name": place_name(cl.jur),
            "unit_id": cl.unit,
            # the live reception pages this user has (the console's headers show only those)
            "live_queue": ctx(request).config.signaling.enabled and cl.role in QUEUE_ROLES,
            "live_wall": ctx(request).config.signaling.enabled and cl.role in WATCH_ROLES,
        }
    )


async def list_edges(request: web.Request) -> web.Response:
    rows = await ctx(request).store.edges(claims(request).jur)
    online = request.query.get("online")
    if online in ("true", "false"):
        rows = [r for r in rows if r["online"] == (online == "true")]
    elif online is not None:
        return error(400, f"online must be 'true' or 'false', got {online!r}")
    return web.json_response({"edges": [present(r) for r in rows]})


async def get_edge(request: web.Request) -> web.Response:
    node = request.match_info["node"]
    row = await ctx(request).store.edge(node)
    if row is None or not claims(request).covers(row["township"]):
        return error(404, f"no box {node!r} in your jurisdiction")
    return web.json_response(present(row))


async def stream_edges(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``snapshot`` (every box) then ``edge`` (one box changed)."""
    c, who = ctx(request), claims(request)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)

    async def send(event: str, data: Any) -> None:
        payload = json.dumps(data, ensure_ascii=False)
        await resp.write(f"event: {event}\ndata: {payload}\n\n".encode())

    def mine(row: EdgeRow) -> bool:
        return who.covers(row["township"])

    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        async with c.live.subscribe(mine) as events:
            rows = await c.store.edges(who.jur)
            await send("snapshot", {"edges": [present(r) for r in rows]})
            iterator = aiter(events)
            while True:
                try:
                    row = await asyncio.wait_for(anext(iterator), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")
                    continue
                except StopAsyncIteration:
                    break
                await send("edge", present(row))
    return resp


async def list_quarantine(request: web.Request) -> web.Response:
    if claims(request).role is not Role.ADMIN:
        return error(403, "the quarantine is visible to admins only")
    return web.json_response({"quarantine": await ctx(request).store.quarantined()})
