"""The kiosk's live API on a real aiohttp server, driving the box's real ``LiveService``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from contracts import signaling as sig
from edge.kiosk import live_api
from runtime.http import serve
from tests.edge.live.conftest import NODE, WAIT, Stack
from tests.media.peers import wait_for


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[str]:
    app = web.Application()
    live_api.install(app, stack.service)
    async with serve(app, "127.0.0.1", 0) as port:
        yield f"http://127.0.0.1:{port}/api/v1/live"


async def test_request_state_and_cancel(stack: Stack, api: str) -> None:
    http = stack.http
    async with http.get(f"{api}/state") as r:
        state = await r.json()
    assert (r.status, state["state"], state["available"]) == (200, "idle", True)

    async with http.post(f"{api}/request", json={"case_no": "510104021-01-010101-0001"}) as r:
        assert r.status == 404 and (await r.json())["code"] == "unknown_case"
    async with http.post(f"{api}/request", data=b"nope") as r:
        assert r.status == 400
    async with http.post(f"{api}/cancel") as r:
        assert r.status == 409 and (await r.json())["code"] == "wrong_state"

    async with http.post(f"{api}/request", json={"case_no": stack.case_no}) as r:
        state = await r.json()
    assert (r.status, state["state"], state["case_no"]) == (200, "waiting", stack.case_no)
    async with http.post(f"{api}/request", json={"case_no": stack.case_no}) as r:
        assert r.status == 409

    # the long poll answers as soon as the queue position arrives
    version = state["version"]
    while state["position"] is None:
        async with http.get(f"{api}/state", params={"after": str(version)}) as r:
            state = await r.json()
        version = state["version"]
    assert state["position"] == 1

    started = time.monotonic()
    poll = asyncio.ensure_future(http.get(f"{api}/state", params={"after": str(version)}))
    await asyncio.sleep(0.2)
    async with http.post(f"{api}/cancel") as r:
        assert r.status == 200 and (await r.json())["state"] == "idle"
    async with await poll as r:
        assert (await r.json())["state"] == "idle"
    assert time.monotonic() - started < live_api.LONG_POLL


async def test_self_view_streams_the_box_camera_during_a_call(stack: Stack, api: str) -> None:
    official = await stack.official()
    try:
        await stack.service.request_reception(stack.case_no)
        entry = (await official.until(sig.Queue, lambda q: bool(q.entries))).entries[0]
        await official.send(sig.Accept(request_id=entry.request_id))
        started = await official.until(sig.SessionStarted)
        await wait_for(lambda: stack.service.call is not None, WAIT, "the call")
        await official.start_media(started.session_id, NODE)
        for view in ("self", "remote"):
            async with stack.http.get(f"{api}/{view}.mjpg") as r:
                assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
                reader = aiohttp.MultipartReader.from_response(r)
                part = await asyncio.wait_for(reader.next(), WAIT)
                assert isinstance(part, aiohttp.BodyPartReader)
                jpeg = await part.read()
                assert part.headers["Content-Type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
    finally:
        await official.close()
