"""The hub's MQTT link for presence: its own retained state, and the boxes' births, deaths
and telemetry projected into the registry.

Anything that cannot be accepted (bad topic, bad JSON, wrong schema, oversized, a payload that
names another box than its topic) goes to the quarantine table with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aiomqtt
from prometheus_client import CollectorRegistry, Counter

from contracts import topics
from contracts.errors import ContractError, MalformedMessage
from contracts.presence import Birth, HubState, decode_status
from contracts.telemetry import Telemetry
from contracts.topics import EdgeChannel
from contracts.wire import decode
from hub.config import HubConfig
from hub.store.db import EdgeRow, HubStore
from runtime.logs import QuietLogger
from runtime.mqtt import BrokerAddress, WillMessage, connection_loop, make_client

log = logging.getLogger(__name__)
quiet = QuietLogger(log)


class PresenceIngest:
    def __init__(
        self,
        config: HubConfig,
        store: HubStore,
        on_change: Callable[[EdgeRow], None],
        registry: CollectorRegistry,
    ) -> None:
        self.config = config
        self.store = store
        self.on_change = on_change
        self.connected = False
        self.messages = Counter(
            "xfv_hub_messages", "MQTT messages taken in", ["channel"], registry=registry
        )
        self.quarantined = Counter(
            "xfv_hub_quarantined", "messages quarantined", ["channel"], registry=registry
        )

    async def run(self) -> None:
        await connection_loop(
            name=self.config.hub_id,
            config=self.config.mqtt,
            broker=self._broker,
            client=self._client,
            session=self._session,
            on_state=self._on_state,
        )

    def _on_state(self, connected: bool) -> None:
        self.connected = connected

    async def _broker(self) -> BrokerAddress:
        assert self.config.mqtt.host
        return BrokerAddress(self.config.mqtt.host, self.config.mqtt.port)

    def _state(self, state: str) -> bytes:
        return HubState(state=state, hub=self.config.hub_id).to_payload()

    async def _client(self, broker: BrokerAddress) -> aiomqtt.Client:
        will = WillMessage(topics.hub_state(self.config.hub_id), self._state("offline"))
        return make_client(
            self.config.mqtt, broker, f"hub-{self.config.hub_id}", will, clean_session=False
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        state_topic = topics.hub_state(self.config.hub_id)
        await client.subscribe(topics.all_edges(EdgeChannel.STATUS), qos=1)
        await client.subscribe(topics.all_edges(EdgeChannel.TELEMETRY), qos=0)
        await client.publish(state_topic, self._state("online"), qos=1, retain=True)
        log.info("%s: online", self.config.hub_id)
        try:
            async for message in client.messages:
                await self.handle(str(message.topic), bytes(message.payload))
        except asyncio.CancelledError:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(
                    client.publish(state_topic, self._state("offline"), qos=1, retain=True), 2.0
                )
            raise

    async def handle(self, topic: str, payload: bytes) -> None:
        """Take in one message; never raises for bad input."""
        node: str | None = None
        channel = "unknown"
        try:
            parsed = topics.parse_edge_topic(topic)
            node, channel = parsed.node, parsed.channel.value
            self.messages.labels(channel).inc()
            if parsed.channel is EdgeChannel.STATUS:
                if not payload:
                    return  # a retained status being cleared
                await self._status(parsed.node, payload)
            elif parsed.channel is EdgeChannel.TELEMETRY:
                report = decode(Telemetry, payload)
                _same_node(parsed.node, report.node)
                row = await self.store.record_telemetry(report)
                if row is not None:
                    self.on_change(row)
        except ContractError as exc:
            self.quarantined.labels(channel).inc()
            qid = await self.store.quarantine(topic, node, str(exc), payload)
            quiet.warning(
                f"q:{node}",
                "%s: quarantined message #%d on %s: %s",
                self.config.hub_id,
                qid,
                topic,
                exc,
            )

    async def _status(self, node: str, payload: bytes) -> None:
        status = decode_status(payload)
        _same_node(node, status.node)
        if isinstance(status, Birth):
            row: EdgeRow | None = await self.store.record_birth(status)
            log.info(
                "%s: box %s online (bd_seq %d, %s)",
                self.config.hub_id,
                node,
                status.bd_seq,
                status.version,
            )
        else:
            row = await self.store.record_death(status)
            if row is None:
                log.info(
                    "%s: ignored stale offline of %s (bd_seq %d)",
                    self.config.hub_id,
                    node,
                    status.bd_seq,
                )
            else:
                log.info("%s: box %s offline (bd_seq %d)", self.config.hub_id, node, status.bd_seq)
        if row is not None:
            self.on_change(row)


def _same_node(topic_node: str, payload_node: Any) -> None:
    if payload_node != topic_node:
        raise MalformedMessage(
            f"payload names node {payload_node!r} but was published on {topic_node!r}'s topic"
        )
