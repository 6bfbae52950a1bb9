"""The printable receipt and the QR codes the kiosk shows.

``GET /receipt/{case_no}`` serves ``static/receipt.html``, an A5 page filled in the browser: the
box keeps no clear copy of the query code, so the kiosk page hands the receipt (case number,
query code, registration time) to it through ``sessionStorage`` under ``xfv-receipt``.
``GET /api/v1/qr?text=...`` draws ``text`` (at most 200 characters) as an SVG QR code.
``add_routes`` also adds the kiosk's static assets (``edge.kiosk.static_files``).
"""

from __future__ import annotations

import logging

import qrcode
from aiohttp import web
from qrcode.image.svg import SvgPathImage

from contracts.cases import CASE_NO_RE
from edge.kiosk import static_files
from edge.kiosk.cases_api import guarded
from runtime.http import json_error

log = logging.getLogger(__name__)

QR_MAX_TEXT = 200


def qr_svg(text: str) -> str:
    """``text`` as a standalone SVG QR code (medium error correction, 4-module quiet zone)."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, image_factory=SvgPathImage
    )
    code.add_data(text)
    code.make(fit=True)
    return str(code.make_image().to_string(encoding="unicode"))


@guarded(local_ok=True)
async def qr(request: web.Request) -> web.Response:
    text = request.query.get("text", "")
    if not text or len(text) > QR_MAX_TEXT:
        return json_error(400, f"text must have 1 to {QR_MAX_TEXT} characters, got {len(text)}")
    return web.Response(
        text=qr_svg(text),
        content_type="image/svg+xml",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )


async def receipt_page(request: web.Request) -> web.Response:
    return static_files.asset("receipt.html")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/receipt/{case_no:" + CASE_NO_RE.pattern + "}", receipt_page)
    app.router.add_get("/api/v1/qr", qr)
    static_files.add_routes(app)
