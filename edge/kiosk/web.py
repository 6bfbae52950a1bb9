"""aiohttp application of the box: ``/`` (kiosk), ``/api/v1/health``, ``/metrics``, and the
kiosk's APIs (cases, photos, receipts, live reception)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from contracts.places import place_name
from edge.config import EdgeConfig
from edge.kiosk import cases_api, live_api, photos_api, receipt
from edge.kiosk.camera import open_camera
from edge.kiosk.keys import CLERK_PASSWORD, CONFIG, KEY, LINK, STORE, VERSION
from edge.live.service import LiveService
from edge.store.db import EdgeStore
from edge.sync.presence import PresenceLink
from runtime.metrics import metrics_handler


def edge_metrics(link: PresenceLink, live: LiveService | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge(
        "xfv_edge_broker_connected", "1 while connected to the broker", registry=registry
    ).set_function(lambda: float(link.state.connected))
    Gauge("xfv_edge_hub_online", "1 while a hub is online", registry=registry).set_function(
        lambda: float(link.state.hub_online)
    )
    Gauge(
        "xfv_edge_bd_seq", "birth/death sequence of the current connection", registry=registry
    ).set_function(lambda: float(link.state.bd_seq))
    Gauge("xfv_edge_births", "births published since start", registry=registry).set_function(
        lambda: float(link.state.births)
    )
    Gauge(
        "xfv_edge_telemetry_sent", "telemetry reports sent since start", registry=registry
    ).set_function(lambda: float(link.state.telemetry_sent))
    if live is not None:
        _live_metrics(registry, live)
    return registry


def _live_metrics(registry: CollectorRegistry, live: LiveService) -> None:
    def call_stat(name: str) -> float:
        stats = live.call.stats() if live.call is not None else None
        return float(getattr(stats, name)) if stats is not None else 0.0

    Gauge(
        "xfv_edge_live_signaling_connected", "1 while the signaling socket is up", registry=registry
    ).set_function(lambda: float(live.client.connected))
    Gauge("xfv_edge_live_in_call", "1 during a live call", registry=registry).set_function(
        lambda: float(live.phase == "in_call")
    )
    Gauge(
        "xfv_edge_live_remote_frames",
        "the official's video frames decoded in this call",
        registry=registry,
    ).set_function(lambda: call_stat("remote_frames"))
    Gauge(
        "xfv_edge_live_local_frames", "camera frames sent in this call", registry=registry
    ).set_function(lambda: call_stat("local_frames"))
    Gauge(
        "xfv_edge_live_bitrate", "video encoder target in this call, bits/s", registry=registry
    ).set_function(lambda: call_stat("bitrate"))


async def health(request: web.Request) -> web.Response:
    link, config = request.app[LINK], request.app[CONFIG]
    return web.json_response(
        {
            "status": "ok",
            "node": config.node_id,
            "township": config.township,
            "township_name": place_name(config.township),
            "version": request.app[VERSION],
            "broker": link.state.broker,
            "connected": link.state.connected,
            "hub_online": link.state.hub_online,
            "bd_seq": link.state.bd_seq,
            "idle_seconds": config.kiosk_idle_seconds,
        }
    )


async def kiosk_page(request: web.Request) -> web.Response:
    html = resources.files("edge.kiosk").joinpath("static/kiosk.html").read_text("utf-8")
    return web.Response(text=html, content_type="text/html", charset="utf-8")


def create_app(
    config: EdgeConfig,
    link: PresenceLink,
    store: EdgeStore,
    version: str,
    key: bytes,
    clerk_password: str = "",
    live: LiveService | None = None,
) -> web.Application:
    app = web.Application(client_max_size=1024**2)
    app[LINK], app[CONFIG], app[VERSION], app[STORE], app[KEY] = link, config, version, store, key
    app[CLERK_PASSWORD] = clerk_password
    cases_api.add_routes(app)
    photos_api.install(app, open_camera(config.camera))
    receipt.add_routes(app)
    if live is not None:
        live_api.install(app, live)
    app.router.add_get("/", kiosk_page)
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/metrics", metrics_handler(edge_metrics(link, live)))
    return app
