"""Document photos taken with the box's camera, staged until a case claims them.

``GET /api/v1/camera/preview`` is a fresh JPEG for the live preview. ``POST /api/v1/photos``
takes a picture, writes it durably to ``state_dir/photos/<sha256>.jpg`` and stages it in the
store (201 ``{sha256, size, url}``); ``POST /api/v1/cases`` then names it in ``photos``.
``GET /api/v1/photos/{sha256}`` serves a staged picture (the kiosk's thumbnails). A photo the
clerk drops is simply never named by a case; staged-but-unused photos are harmless.

Like case registration these are open to the box's own screen (loopback) and otherwise need
the clerk's token.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from aiohttp import web

from edge.kiosk.camera import Camera, CameraError
from edge.kiosk.cases_api import guarded
from edge.kiosk.keys import CONFIG, STORE
from runtime.files import write_durably as durable
from runtime.http import json_error

log = logging.getLogger(__name__)

CAMERA: web.AppKey[Camera] = web.AppKey("camera")
MIME = "image/jpeg"
NO_STORE = {"Cache-Control": "no-store"}


def photo_dir(app: web.Application) -> Path:
    return app[CONFIG].state_dir / "photos"


def write_durably(directory: Path, name: str, data: bytes) -> Path:
    """Write ``directory/name`` atomically (see ``runtime.files.write_durably``)."""
    return durable(directory / name, data, 0o600)


def _camera_failed(request: web.Request, exc: CameraError) -> web.Response:
    log.warning("%s: %s", request.app[CONFIG].node_id, exc)
    return json_error(503, str(exc), headers=NO_STORE)


@guarded(local_ok=True)
async def preview(request: web.Request) -> web.Response:
    try:
        jpeg = await asyncio.to_thread(request.app[CAMERA].snapshot)
    except CameraError as exc:
        return _camera_failed(request, exc)
    return web.Response(body=jpeg, content_type=MIME, headers=NO_STORE)


@guarded(local_ok=True)
async def take_photo(request: web.Request) -> web.Response:
    app = request.app
    try:
        jpeg = await asyncio.to_thread(app[CAMERA].snapshot)
    except CameraError as exc:
        return _camera_failed(request, exc)
    sha256 = hashlib.sha256(jpeg).hexdigest()
    path = await asyncio.to_thread(write_durably, photo_dir(app), f"{sha256}.jpg", jpeg)
    await app[STORE].stage_photo(sha256, path, len(jpeg), MIME)
    log.info("%s: staged photo %s (%d bytes)", app[CONFIG].node_id, sha256[:12], len(jpeg))
    return web.json_response(
        {"sha256": sha256, "size": len(jpeg), "url": f"/api/v1/photos/{sha256}"}, status=201
    )


@guarded(local_ok=True)
async def get_photo(request: web.Request) -> web.StreamResponse:
    sha256 = request.match_info["sha256"]
    path = photo_dir(request.app) / f"{sha256}.jpg"
    if not await asyncio.to_thread(path.is_file):
        return json_error(404, f"no photo {sha256!r} on this box")
    return web.FileResponse(
        path, headers={"Content-Type": MIME, "Cache-Control": "private, max-age=86400"}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/camera/preview", preview)
    app.router.add_post("/api/v1/photos", take_photo)
    app.router.add_get("/api/v1/photos/{sha256:[0-9a-f]{64}}", get_photo)


def install(app: web.Application, camera: Camera) -> None:
    """Give ``app`` the camera (released on cleanup) and the photo routes."""
    app[CAMERA] = camera

    async def release(app: web.Application) -> None:
        await asyncio.to_thread(app[CAMERA].close)

    app.on_cleanup.append(release)
    add_routes(app)
