"""``POST /api/v1/live/token`` on a real hub, and its token opening a real signaling socket;
the box's signaling token in the config a box gets after its birth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError

from contracts import signaling as sig
from contracts.access import Audience, Role, verify_token
from hub.app import HubApp
from hub.config import HubConfig
from tests.signaling.conftest import TOWNSHIP, Client, running_server
from tests.support.broker import Mosquitto
from tests.support.procs import Hub, http_json

PASSWORD = "zhang-password"


def hub_key(hub: Hub) -> bytes:
    return (hub.dir / "state" / "hub.key").read_text().strip().encode()


LIVE_URL = "ws://127.0.0.1:9/ws"
"""A signaling address nothing listens on: the hub's relay agent just keeps retrying."""


@pytest.fixture
def live_hub(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Hub]:
    """A hub with live reception on (``signaling.url`` set)."""
    h = Hub(
        tmp_path / "hub",
        mosquitto,
        extra={"signaling": {"url": LIVE_URL}, "relay": {"loopback_only": True}},
    ).start(timeout=60)
    yield h
    h.stop()


async def test_a_signed_in_official_gets_a_signaling_token_that_the_server_accepts(
    live_hub: Hub, tmp_path: Path
) -> None:
    hub = live_hub
    hub.add_user("zhang", "official", "510104", PASSWORD)
    api = hub.login("zhang", PASSWORD)
    status, body = http_json(hub.base + "/api/v1/live/token", api, body={}, method="POST")
    assert status == 200, body
    claims = verify_token(hub_key(hub), body["token"], Audience.SIGNALING)
    assert (claims.sub, claims.role, claims.jur) == ("zhang", Role.OFFICIAL, "510104")
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert dt.timedelta(0) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=10)
    assert claims.exp == int(expires.timestamp())
    assert body["signaling_url"] == LIVE_URL

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


async def test_the_console_cookie_needs_the_console_header(live_hub: Hub) -> None:
    hub = live_hub
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
        signaling={"url": "wss://live.example.cn/ws"},
    )
    app = HubApp(config)
    box = app._box_config("box-7", TOWNSHIP)
    claims = verify_token(app.key, box["signaling_token"], Audience.SIGNALING)
    assert (claims.sub, claims.role, claims.jur) == ("box-7", Role.BOX, TOWNSHIP)
    assert box["signaling_url"] == "wss://live.example.cn/ws"
    assert box["blob_url"] == "https://hub.example.cn"


def test_with_live_reception_off_a_box_gets_no_signaling(tmp_path: Path) -> None:
    config = HubConfig(hub_id="hub-test", state_dir=tmp_path, discovery={"announce": False})
    box = HubApp(config)._box_config("box-7", TOWNSHIP)
    assert set(box) == {"blob_url", "blob_token"}


async def test_with_live_reception_off_no_live_token_is_given(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    hub = Hub(tmp_path / "hub", mosquitto).start(timeout=60)
    try:
        await _no_live_token(hub)
    finally:
        hub.stop()


async def _no_live_token(hub: Hub) -> None:
    hub.add_user("zhang", "official", "510104", PASSWORD)
    api = hub.login("zhang", PASSWORD)
    status, body = http_json(hub.base + "/api/v1/live/token", api, body={}, method="POST")
    assert status == 503
    assert "signaling.url" in body["error"]


@pytest.mark.parametrize(
    ("signaling", "says"),
    [
        ({"url": "http://hub:8001/ws"}, "ws:// or wss:// URL"),
        ({"internal_url": "ws://127.0.0.1:8001/ws"}, "url is not"),
        ({"url": "ws://h/ws", "jurisdiction": "99"}, "no known province"),
        ({"url": "ws://h/ws", "reconnect_min": 5, "reconnect_max": 1}, "below reconnect_min"),
    ],
)
def test_bad_signaling_settings_say_what_is_wrong(
    tmp_path: Path, signaling: dict[str, object], says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        HubConfig(hub_id="hub-test", state_dir=tmp_path, signaling=signaling)
