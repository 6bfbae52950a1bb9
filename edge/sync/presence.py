"""The box's presence on its hub: will, birth, rebirth and telemetry.

On every connect the box bumps ``bd_seq`` in its database, connects with a retained will
``Death(bd_seq)``, subscribes to the hubs' retained state and publishes a retained
``Birth(bd_seq)`` once its hub is online (again after each hub restart). A clean stop publishes
the same ``Death`` itself, since a clean MQTT disconnect suppresses the will.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import aiomqtt

from contracts import topics
from contracts.commands import Command
from contracts.errors import ContractError
from contracts.presence import Birth, Death, HubState, decode_status
from contracts.wire import decode
from edge.config import EdgeConfig
from edge.discovery import find_broker
from edge.store.db import EdgeStore
from edge.sync.photos import PhotoUploader
from edge.sync.sender import OutboxSender
from edge.telemetry import sample
from runtime.logs import QuietLogger
from runtime.mqtt import BrokerAddress, WillMessage, connection_loop, make_client

log = logging.getLogger(__name__)
HUB_STATE_PREFIX = topics.ALL_HUB_STATES.removesuffix("+/state")
quiet = QuietLogger(log)


@dataclass
class LinkState:
    """What the kiosk, ``/api/v1/health`` and the metrics show about the link."""

    broker: str | None = None
    connected: bool = False
    hub_online: bool = False
    bd_seq: int = 0
    births: int = 0
    telemetry_sent: int = 0
    hubs: dict[str, bool] = field(default_factory=dict)


class PresenceLink:
    def __init__(self, config: EdgeConfig, store: EdgeStore, version: str) -> None:
        self.config = config
        self.store = store
        self.version = version
        self.sender = OutboxSender(config.node_id, store)
        self.photos = PhotoUploader(config.node_id, store, config.upload_rate_bps)
        self.kiosk_port: int | None = None
        self.on_signaling: Callable[[str, str], None] | None = None
        """Takes ``(signaling_url, signaling_token)`` from each config command (the live
        service)."""
        self.state = LinkState()
        self._born = asyncio.Event()

    async def run(self) -> None:
        """Keep the link up until cancelled."""
        await connection_loop(
            name=self.config.node_id,
            config=self.config.mqtt,
            broker=self._broker,
            client=self._client,
            session=self._session,
            on_state=self._on_state,
        )

    async def _broker(self) -> BrokerAddress:
        address = await find_broker(self.config)
        self.state.broker = str(address)
        return address

    async def _client(self, broker: BrokerAddress) -> aiomqtt.Client:
        self.state.bd_seq = await self.store.next_bd_seq()
        death = Death(node=self.config.node_id, bd_seq=self.state.bd_seq)
        will = WillMessage(topics.edge_status(self.config.node_id), death.to_payload())
        return make_client(
            self.config.mqtt, broker, self.config.node_id, will, max_inflight=self.sender.window
        )

    def _on_state(self, connected: bool) -> None:
        self.state.connected = connected
        if not connected:
            self.state.hub_online = False
            self.state.hubs.clear()
            self._born.clear()

    async def _session(self, client: aiomqtt.Client) -> None:
        node = self.config.node_id
        hub_filter = (
            topics.hub_state(self.config.hub_id) if self.config.hub_id else (topics.ALL_HUB_STATES)
        )
        own_status, ack, cmd = (
            topics.edge_status(node),
            topics.edge_ack(node),
            topics.edge_cmd(node),
        )
        await client.subscribe(hub_filter, qos=1)
        await client.subscribe(own_status, qos=1)
        await client.subscribe(ack, qos=1)
        await client.subscribe(cmd, qos=1)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._telemetry(client))
                tg.create_task(self._send_outbox(client))
                async for message in client.messages:
                    topic, payload = str(message.topic), bytes(message.payload)
                    if topic == ack:
                        await self.sender.on_ack(payload)
                    elif topic == cmd:
                        self._on_command(payload)
                    elif topic == own_status:
                        await self._on_own_status(client, payload)
                    elif topic.startswith(HUB_STATE_PREFIX):
                        await self._on_hub_state(client, topic, payload)
                    else:  # the demo's amqtt broker sometimes delivers others' topics
                        log.debug("%s: ignoring unsubscribed topic %s", node, topic)
        except asyncio.CancelledError:
            death = Death(node=node, bd_seq=self.state.bd_seq)
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(
                    client.publish(
                        topics.edge_status(node), death.to_payload(), qos=1, retain=True
                    ),
                    2.0,
                )
                log.info(
                    "%s: published offline (bd_seq %d) before stopping", node, self.state.bd_seq
                )
            raise

    def _on_command(self, payload: bytes) -> None:
        try:
            command = decode(Command, payload)
        except ContractError as exc:
            quiet.warning("cmd", "%s: ignoring malformed command: %s", self.config.node_id, exc)
            return
        start = command.args.get("from")
        url, token = command.args.get("blob_url"), command.args.get("blob_token")
        if command.kind == "resync" and isinstance(start, int) and start >= 1:
            self.sender.resync(start)
        elif command.kind == "config" and isinstance(url, str) and isinstance(token, str):
            self.photos.configure(url, token)
            self._configure_signaling(command.args)
        else:
            quiet.warning(
                "cmd",
                "%s: ignoring command %s with args %s",
                self.config.node_id,
                command.kind,
                sorted(command.args),
            )

    def _configure_signaling(self, args: dict[str, object]) -> None:
        url, token = args.get("signaling_url"), args.get("signaling_token")
        if not (isinstance(url, str) and isinstance(token, str)):
            log.info("%s: the hub's config names no signaling server", self.config.node_id)
            return
        if self.on_signaling is not None:
            self.on_signaling(url, token)

    async def _send_outbox(self, client: aiomqtt.Client) -> None:
        await self._born.wait()
        await self.sender.run(client)

    async def _on_hub_state(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        try:
            hub = topics.parse_hub_topic(topic)
            state = decode(HubState, payload)
        except ContractError as exc:
            quiet.warning(
                topic, "%s: ignoring hub state on %s: %s", self.config.node_id, topic, exc
            )
            return
        self.state.hubs[hub] = state.state == "online"
        self.state.hub_online = any(self.state.hubs.values())
        if state.state == "online":  # first sight, or the hub restarted: (re)birth
            await self._publish_birth(client)
        elif not self.state.hub_online:
            self._born.clear()
            log.warning("%s: hub %s is offline; waiting for it", self.config.node_id, hub)

    async def _on_own_status(self, client: aiomqtt.Client, payload: bytes) -> None:
        """A stale will of an older connection replaced our retained birth: rebirth."""
        try:
            status = decode_status(payload)
        except ContractError:
            return
        if isinstance(status, Death) and status.bd_seq != self.state.bd_seq and self._born.is_set():
            log.info(
                "%s: stale offline (bd_seq %d) retained over our birth; rebirth",
                self.config.node_id,
                status.bd_seq,
            )
            await self._publish_birth(client)

    async def _publish_birth(self, client: aiomqtt.Client) -> None:
        birth = Birth(
            node=self.config.node_id,
            township=self.config.township,
            version=self.version,
            bd_seq=self.state.bd_seq,
            kiosk_port=self.kiosk_port,
        )
        await client.publish(
            topics.edge_status(self.config.node_id), birth.to_payload(), qos=1, retain=True
        )
        self.state.births += 1
        self._born.set()
        log.info("%s: birth published (bd_seq %d)", self.config.node_id, self.state.bd_seq)

    async def _telemetry(self, client: aiomqtt.Client) -> None:
        topic = topics.edge_telemetry(self.config.node_id)
        while True:
            await self._born.wait()
            depth = (await self.store.sync_state()).depth
            report = await asyncio.to_thread(
                sample, self.config.node_id, self.config.state_dir, depth
            )
            await client.publish(topic, report.to_payload(), qos=0)
            self.state.telemetry_sent += 1
            await asyncio.sleep(self.config.telemetry.interval)
