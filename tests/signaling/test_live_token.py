"""``POST /api/v1/live/token`` on a real hub, and its token opening a real signaling socket;
the box's signaling token in the config a box gets after its birth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import aiohttp

from contracts import signaling as sig
from contracts.access import Audience, Role, verify_token
from hub.app import HubApp
from hub.config import HubConfig
from tests.signaling.conftest import TOWNSHIP, Client, running_server
from tests.support.procs import Hub, http_json

PASSWORD = "zhang-password"


def hub_key(hub: Hub) -> bytes:
    return (hub.dir / "state" / "hub.key").read_text().strip().encode()


async def test_a_signed_in_official_gets_a_signaling_token_that_the_server_accepts(
    hub: Hub, tmp_path: Path
) -> None:
    hub.add_user("zhang", "official", "510104", PASSWORD)
    api = hub.login("zhang", PASSWORD)
    status, body = http_json(hub.base + "/api/v1/live/token", api, body={}, method="POST")
    assert status == 200, body
    claims = verify_token(hub_key(hub), body["token"], Audience.SIGNALING)
    assert (claims.sub, claims.role, claims.jur) == ("zhang", Role.OFFICIAL, "510104")
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert dt.timedelta(0) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=10)
    assert claims.exp == int(expires.timestamp())
    assert body["signaling_url"] == "ws://127.0.0.1:8001/ws"  # the placeholder derivation

    status, body = http_json(hub.base + "/api/v1/live/token", None, body={}, method="POST")
    assert status == 401

    _, fresh = http_json(hub.base + "/api/v1/live/token", api, body={}, method="POST")
    async with (
        running_server(tmp_path, key=hub_key(hub).decode()) as ours,
        running_server(tmp_path) as other,
        aiohttp.ClientSession() as http,
    ):
        client = Client(await http.ws_connect(f"{ours.url}?token={fresh['token']}"))
        welcome = await client.expect(sig.Welcome)
        assert welcome.you == sig.Identity(sub="zhang", role=Role.OFFICIAL, jur="510104")
        stranger = Client(await http.ws_connect(f"{other.url}?token={fresh['token']}"))
        error = await stranger.expect(sig.Error)  # a server holding another key refuses it
        assert error.code == "invalid_token"
        assert "Signature verification failed" in error.message


async def test_the_console_cookie_needs_the_console_header(hub: Hub) -> None:
    hub.add_user("zhang", "official", "510104", PASSWORD)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        form = {"username": "zhang", "password": PASSWORD}
        async with http.post(hub.base + "/login", data=form, allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.post(hub.base + "/api/v1/live/token") as resp:
            assert resp.status == 401
        headers = {"X-Xfv-Console": "1"}
        async with http.post(hub.base + "/api/v1/live/token", headers=headers) as resp:
            assert resp.status == 200
            body = await resp.json()
    claims = verify_token(hub_key(hub), body["token"], Audience.SIGNALING)
    assert (claims.sub, claims.jur) == ("zhang", "510104")


def test_the_box_config_carries_its_signaling_token(tmp_path: Path) -> None:
    config = HubConfig(
        hub_id="hub-test",
        state_dir=tmp_path,
        public_url="https://hub.example.cn",
        discovery={"announce": False},
    )
    app = HubApp(config)
    box = app._box_config("box-7", TOWNSHIP)
    claims = verify_token(app.key, box["signaling_token"], Audience.SIGNALING)
    assert (claims.sub, claims.role, claims.jur) == ("box-7", Role.BOX, TOWNSHIP)
    assert box["signaling_url"] == "wss://hub.example.cn:8001/ws"
    assert box["blob_url"] == "https://hub.example.cn"
