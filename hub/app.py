"""The hub's composition: store, presence ingest, HTTP API and console, zeroconf, and (when
``signaling.url`` is set) live reception's media relay with its signaling agent.

``HubApp.run()`` runs until cancelled and tears down in reverse order of start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge

from contracts.access import Audience
from contracts.signaling import LiveEvent, event_json
from hub import __version__
from hub.accounts import LoginThrottle
from hub.api.blobs import box_token
from hub.api.context import HubContext
from hub.api.live import signaling_url
from hub.api.web import create_app
from hub.blobs.store import BlobStore
from hub.blobs.verifier import verify_photos_forever
from hub.config import HubConfig
from hub.discovery import hub_announcer
from hub.ingest.link import HubLink
from hub.ingest.writer import IngestWriter
from hub.live import Broadcaster
from hub.pii import PiiVault
from hub.store.db import EdgeRow, HubStore
from hub.store.live import record_event
from hub.workflow.engine import Rules
from hub.workflow.policy import load_policies
from hub.workflow.service import run_workflow
from runtime.config import local_secret, read_secret
from runtime.http import serve

if TYPE_CHECKING:
    from hub.media.agent import RelayAgent
    from hub.media.relay import Relay

log = logging.getLogger(__name__)


def signing_key(config: HubConfig) -> bytes:
    """The token key from ``auth.secret_file``, or ``state_dir/hub.key`` (made if missing)."""
    if config.auth.secret_file:
        return read_secret(config.auth.secret_file).encode()
    return local_secret(config.state_dir / "hub.key").encode()


def pii_key(config: HubConfig) -> bytes:
    if config.sync.pii_key_file:
        return bytes.fromhex(read_secret(config.sync.pii_key_file))
    return bytes.fromhex(local_secret(config.state_dir / "pii.key"))


class HubApp:
    def __init__(self, config: HubConfig, version: str = __version__) -> None:
        self.config = config
        self.version = version
        self.store = HubStore(config.database)
        self.registry = CollectorRegistry()
        self.live = Broadcaster()
        pii = pii_key(config)
        self.vault = PiiVault(pii)
        self.key = signing_key(config)
        self.blobs = BlobStore(config.state_dir / "blobs", max_bytes=config.sync.max_blob_bytes)
        self.http_port: int | None = None
        self.writer = IngestWriter(config.database, pii)
        self.ingest = HubLink(
            config,
            self.store,
            self.writer,
            self._changed,
            self.registry,
            box_config=self._box_config,
        )
        self._online: dict[str, bool] = {}
        Gauge(
            "xfv_hub_broker_connected", "1 while connected to the broker", registry=self.registry
        ).set_function(lambda: float(self.ingest.connected))
        Gauge(
            "xfv_hub_console_streams", "open live console streams", registry=self.registry
        ).set_function(lambda: float(self.live.subscribers))
        Gauge("xfv_hub_edges_online", "boxes online", registry=self.registry).set_function(
            lambda: float(sum(self._online.values()))
        )
        Gauge("xfv_hub_edges", "boxes known", registry=self.registry).set_function(
            lambda: float(len(self._online))
        )
        self.rules = Rules(
            load_policies(config.workflow.policies_file), tuple(config.workflow.reply_elements)
        )
        self.ready = asyncio.Event()
        self.relay: Relay | None = None
        self.agent: RelayAgent | None = None

    def _box_config(self, node: str, township: str) -> dict[str, str]:
        """What a box is told after its birth: where and with which token to upload blobs,
        and (when live reception is on) to open its signaling WebSocket."""
        config = {
            "blob_url": self.config.upload_url(self.http_port),
            "blob_token": box_token(self.key, node, township),
        }
        url = signaling_url(self.config)
        if url is not None:
            config["signaling_url"] = url
            config["signaling_token"] = box_token(self.key, node, township, Audience.SIGNALING)
        return config

    async def _live_event(self, event: LiveEvent) -> None:
        """A session event from signaling (through the relay agent): into the case timeline,
        ``live_sessions``/``live_views`` and the audit log (``hub.store.live``)."""
        new = await self.store.run(lambda db: record_event(db, event))
        log.info("live event %s%s", event_json(event), "" if new else " (already recorded)")

    async def _start_live(self, stack: contextlib.AsyncExitStack) -> None:
        """The media relay and its signaling agent (stopped in reverse order by ``stack``)."""
        from hub.media.agent import RelayAgent
        from hub.media.relay import Relay
        from runtime.rtc import install_low_latency, loopback_ice

        link = self.config.signaling
        url = link.agent_url
        assert url is not None
        install_low_latency()
        if self.config.relay.loopback_only:
            stack.enter_context(loopback_ice())
        self.relay = await stack.enter_async_context(Relay(self.config.relay))
        self.agent = await stack.enter_async_context(
            RelayAgent(
                self.relay,
                url,
                self.key,
                link.jurisdiction,
                on_event=self._live_event,
                reconnect_min=link.reconnect_min,
                reconnect_max=link.reconnect_max,
                subscribe_wait=link.subscribe_wait,
            )
        )

    def _changed(self, row: EdgeRow) -> None:
        self._online[row["node"]] = bool(row["online"])
        self.live.publish(row)

    async def run(self) -> None:
        config = self.config
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.store)
            await stack.enter_async_context(self.writer)
            self._online = {r["node"]: r["online"] for r in await self.store.edges()}
            context = HubContext(
                config=config,
                store=self.store,
                key=self.key,
                live=self.live,
                ingest=self.ingest,
                vault=self.vault,
                throttle=LoginThrottle(config.auth.max_login_failures),
                version=self.version,
                rules=self.rules,
            )
            self.http_port = await stack.enter_async_context(
                serve(
                    create_app(context, self.registry, self.blobs),
                    config.http.host,
                    config.http.port,
                )
            )
            if config.signaling.enabled:
                await self._start_live(stack)
            if config.discovery.announce:
                await stack.enter_async_context(hub_announcer(config, self.http_port, self.version))
            log.info(
                "%s: console on http://%s:%d/", config.hub_id, config.http.host, self.http_port
            )
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(verify_photos_forever(self.store, self.blobs))
                tg.create_task(run_workflow(self.store, self.rules, config.workflow))
                await self.ingest.run()
