"""The kiosk's local JSON API for live video reception (see ``docs/kiosk-live.md``).

- ``POST /api/v1/live/request {case_no}``: ask for an official about one of this box's cases;
  200 with the state (``waiting``). 404 ``unknown_case``, 409 ``wrong_state`` (already waiting
  or in a call), 503 ``unavailable`` (no signaling connection yet).
- ``POST /api/v1/live/cancel``: withdraw the waiting request, or end the call; 200 with the
  state, 409 when there is nothing to cancel.
- ``GET /api/v1/live/state[?after=N]``: the state ``{state, available, case_no, request_id,
  position, session_id, official, started_at, ended_reason, duration_s, error, call,
  recordings, version}``; ``state`` is ``idle``, ``waiting`` (``position`` 1 = next),
  ``in_call`` or ``ended``. With ``after`` (a ``version`` seen before) the answer waits up to
  ``LONG_POLL`` seconds for a change, so the screen follows the queue live.
- ``GET /api/v1/live/remote.mjpg`` and ``/self.mjpg``: the official's picture and the box's own
  camera as MJPEG (``multipart/x-mixed-replace``) for ``<img>``, at most ``MJPEG_FPS``.
- ``GET /api/v1/live/speaker``: a WebSocket carrying the official's voice as 20 ms chunks of
  48 kHz mono PCM while a call is up (``edge.kiosk.speaker``).

Errors are ``{"error": message, "code": code}``. Access as for case registration: the box's
own screen (loopback) is let in, the LAN needs the clerk's token.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import av
import cv2
import numpy as np
from aiohttp import web

from edge.kiosk import speaker
from edge.kiosk.cases_api import guarded
from edge.live.errors import LiveError, LiveUnavailable, UnknownCase, WrongState
from edge.live.service import LiveService
from runtime.http import json_error

log = logging.getLogger(__name__)

LIVE: web.AppKey[LiveService] = web.AppKey("live", LiveService)
LONG_POLL = 20.0
MJPEG_FPS = 12
JPEG_QUALITY = 80
BOUNDARY = "xfvframe"
STATUS = {UnknownCase: 404, WrongState: 409, LiveUnavailable: 503}


def _state(service: LiveService) -> dict[str, Any]:
    return {**service.state().as_dict(), "version": service.version}


def _failed(exc: LiveError) -> web.Response:
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 409)
    return json_error(status, str(exc), code=exc.code)


@guarded(local_ok=True)
async def request_reception(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    case_no = body.get("case_no") if isinstance(body, dict) else None
    if not isinstance(case_no, str) or not case_no:
        return json_error(400, 'body must be JSON: {"case_no": "..."}', code="bad_request")
    service = request.app[LIVE]
    try:
        await service.request_reception(case_no)
    except LiveError as exc:
        return _failed(exc)
    return web.json_response(_state(service))


@guarded(local_ok=True)
async def cancel(request: web.Request) -> web.Response:
    service = request.app[LIVE]
    try:
        await service.cancel()
    except LiveError as exc:
        return _failed(exc)
    return web.json_response(_state(service))


@guarded(local_ok=True)
async def state(request: web.Request) -> web.Response:
    service = request.app[LIVE]
    after = request.query.get("after")
    if after is not None:
        try:
            version = int(after)
        except ValueError:
            return json_error(400, f"after must be a version number, got {after!r}")
        await service.wait_change(version, LONG_POLL)
    return web.json_response(_state(service))


def jpeg(frame: av.VideoFrame) -> bytes:
    """A decoded frame as JPEG (runs in a thread)."""
    bgr = frame.to_ndarray(format="bgr24")
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(np.asarray(data).tobytes())


async def _mjpeg(request: web.Request, remote: bool) -> web.StreamResponse:
    service = request.app[LIVE]
    response = web.StreamResponse(
        headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    last: av.VideoFrame | None = None
    try:
        while True:
            call = service.call
            frame = None if call is None else (call.last_remote if remote else call.last_local)
            if frame is not None and frame is not last:
                last = frame
                data = await asyncio.to_thread(jpeg, frame)
                await response.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                    + b"\r\n"
                )
            await asyncio.sleep(1 / MJPEG_FPS)
    except (ConnectionResetError, ConnectionError):
        pass
    return response


@guarded(local_ok=True)
async def remote_mjpeg(request: web.Request) -> web.StreamResponse:
    return await _mjpeg(request, remote=True)


@guarded(local_ok=True)
async def self_mjpeg(request: web.Request) -> web.StreamResponse:
    return await _mjpeg(request, remote=False)


def install(app: web.Application, service: LiveService) -> None:
    app[LIVE] = service
    app.router.add_post("/api/v1/live/request", request_reception)
    app.router.add_post("/api/v1/live/cancel", cancel)
    app.router.add_get("/api/v1/live/state", state)
    app.router.add_get("/api/v1/live/remote.mjpg", remote_mjpeg)
    app.router.add_get("/api/v1/live/self.mjpg", self_mjpeg)
    speaker.install(app, service)
