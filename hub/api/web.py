"""The hub's aiohttp application: routes, middleware, metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from hub.api import auth, blobs, cases, duplicates, edges, live, query, recordings, stats, workflow
from hub.api.context import CTX, HubContext
from hub.blobs.store import BlobStore
from hub.console import pages
from runtime.metrics import metrics_handler


def create_app(
    context: HubContext, registry: CollectorRegistry, blob_store: BlobStore
) -> web.Application:
    app = web.Application(middlewares=[auth.require_token], client_max_size=1024**2)
    app[CTX] = context
    r = app.router
    r.add_get("/api/v1/health", edges.health)
    r.add_post("/api/v1/login", auth.api_login)
    r.add_get("/api/v1/me", edges.me)
    r.add_get("/api/v1/edges", edges.list_edges)
    r.add_get("/api/v1/edges/stream", edges.stream_edges)
    r.add_get("/api/v1/edges/{node}", edges.get_edge)
    r.add_get("/api/v1/quarantine", edges.list_quarantine)
    cases.add_routes(app)
    workflow.add_routes(app)
    duplicates.add_routes(app)
    stats.add_routes(app)
    query.add_routes(app)
    live.add_routes(app)
    blobs.add_routes(app, blob_store, context.key)
    recordings.add_routes(app, blob_store)
    r.add_get("/metrics", metrics_handler(registry))
    r.add_get("/", pages.console_page)
    r.add_get("/cases", pages.cases_page)
    r.add_get("/cases/{case_no}", pages.case_page)
    r.add_get("/quarantine", pages.quarantine_page)
    r.add_get("/supervision", pages.supervision_page)
    r.add_get("/inbox", pages.inbox_page)
    r.add_get("/live", pages.live_page)
    r.add_get("/live/call/{session_id}", pages.call_page)
    r.add_get("/live/sessions/{session_id}", pages.live_session_page)
    r.add_get("/wall", pages.wall_page)
    r.add_get("/edges/{node}", pages.edge_page)
    r.add_get("/login", pages.login_page)
    r.add_post("/login", auth.console_login)
    r.add_post("/logout", auth.console_logout)
    r.add_get("/static/{name}", pages.static_file)
    return app
