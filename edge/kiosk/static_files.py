"""The kiosk's static assets: ``/static/kiosk.js``, ``/static/kiosk.css``,
``/static/receipt.html``, ``/static/speaker-worklet.js`` (the AudioWorklet that plays the
official's voice) — a fixed list; nothing else under ``static/`` is served."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

STATIC = resources.files("edge.kiosk").joinpath("static")
TYPES = {
    "kiosk.js": "application/javascript",
    "kiosk.css": "text/css",
    "receipt.html": "text/html",
    "speaker-worklet.js": "application/javascript",
}
# The kiosk is on the box itself: revalidate every time so an upgrade shows at once.
NO_CACHE = {"Cache-Control": "no-cache"}


def static_text(name: str) -> str:
    return STATIC.joinpath(name).read_text("utf-8")


def asset(name: str) -> web.Response:
    return web.Response(
        text=static_text(name), content_type=TYPES[name], charset="utf-8", headers=NO_CACHE
    )


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in TYPES:
        raise web.HTTPNotFound()
    return asset(name)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/static/{name}", static_file)
