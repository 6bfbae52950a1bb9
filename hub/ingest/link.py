"""The hub's MQTT link: its retained state, box presence, and box events.

Two persistent sessions (clean_session false), so QoS 1 messages published while the hub was
down wait at the broker: the main one (aiomqtt, with the hub's will) for state, presence,
telemetry, acks and commands, and one for box events only (``receiver.EventReceiver``).

Events are committed in batches (everything that arrived while the last batch was being
written) by the ingest writer process (``writer.IngestWriter``), and only then acknowledged
twice: the retained cumulative ``Ack`` on each box's ack topic, and the MQTT PUBACK (paho manual
ack), so the broker redelivers anything the hub did not commit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Callable

import aiomqtt
from prometheus_client import CollectorRegistry, Counter, Histogram

from contracts import topics
from contracts.commands import Ack, Command
from contracts.errors import ContractError
from contracts.presence import HubState
from contracts.topics import EdgeChannel
from hub.config import HubConfig
from hub.ingest.presence import PresenceIngest
from hub.ingest.receiver import EventReceiver, Received
from hub.ingest.writer import IngestWriter
from hub.store.db import EdgeRow, HubStore
from hub.store.events import Batch, Outcome
from runtime.logs import QuietLogger
from runtime.mqtt import (
    BrokerAddress,
    WillMessage,
    ack_message,
    connection_loop,
    enable_manual_ack,
    make_client,
)

log = logging.getLogger(__name__)
quiet = QuietLogger(log)
RESYNC_CHECK_SECONDS = 0.5
IN_FLIGHT = 3


@functools.lru_cache(maxsize=4096)
def _node_of(topic: str) -> str:
    """The box an events topic names (cached: a hub hears the same few hundred topics, and
    parsing one for every event was a tenth of the main process's time)."""
    return topics.parse_edge_topic(topic).node


class HubLink:
    def __init__(
        self,
        config: HubConfig,
        store: HubStore,
        writer: IngestWriter,
        on_change: Callable[[EdgeRow], None],
        registry: CollectorRegistry,
        box_config: Callable[[str, str], dict[str, str]] | None = None,
    ) -> None:
        self.box_config = box_config
        self.config = config
        self.store = store
        self.writer = writer
        self.presence = PresenceIngest(config.hub_id, store, on_change)
        self.connected = False
        self.messages = Counter(
            "xfv_hub_messages", "MQTT messages taken in", ["channel"], registry=registry
        )
        self.quarantined = Counter(
            "xfv_hub_quarantined", "messages quarantined", ["channel"], registry=registry
        )
        self.events = Counter(
            "xfv_hub_events", "box events by outcome", ["outcome"], registry=registry
        )
        self.batch_sizes = Histogram(
            "xfv_hub_event_batch",
            "events per committed batch",
            buckets=(1, 5, 20, 100, 500, 2000),
            registry=registry,
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
        """``connected`` turns true only once the session is subscribed and online (in
        ``_session``): before that, events a box publishes would find no subscriber."""
        if not connected:
            self.connected = False

    @property
    def _address(self) -> BrokerAddress:
        assert self.config.mqtt.host
        return BrokerAddress(self.config.mqtt.host, self.config.mqtt.port)

    async def _broker(self) -> BrokerAddress:
        return self._address

    def _state(self, state: str) -> bytes:
        return HubState(state=state, hub=self.config.hub_id).to_payload()

    async def _client(self, broker: BrokerAddress) -> aiomqtt.Client:
        will = WillMessage(topics.hub_state(self.config.hub_id), self._state("offline"))
        client = make_client(
            self.config.mqtt, broker, f"hub-{self.config.hub_id}", will, clean_session=False
        )
        enable_manual_ack(client)
        client.pending_calls_threshold = 10_000
        return client

    async def _session(self, client: aiomqtt.Client) -> None:
        state_topic = topics.hub_state(self.config.hub_id)
        await client.subscribe(topics.all_edges(EdgeChannel.STATUS), qos=1)
        await client.subscribe(topics.all_edges(EdgeChannel.TELEMETRY), qos=0)
        # Events have their own connection; a session of an older hub may still carry them.
        await client.unsubscribe(topics.all_edges(EdgeChannel.EVENTS))
        receiver = EventReceiver(
            self.config.mqtt,
            self._address,
            f"hub-{self.config.hub_id}-events",
            topics.all_edges(EdgeChannel.EVENTS),
        )
        try:
            async with receiver, asyncio.TaskGroup() as tg:
                await client.publish(state_topic, self._state("online"), qos=1, retain=True)
                self.connected = True
                log.info("%s: online", self.config.hub_id)
                tg.create_task(self._resync_loop(client))
                tg.create_task(self._ingest(client, receiver))
                async for message in client.messages:  # status and telemetry
                    await self._presence(client, str(message.topic), bytes(message.payload))
                    ack_message(client, message)
        except asyncio.CancelledError:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(
                    client.publish(state_topic, self._state("offline"), qos=1, retain=True), 2.0
                )
            raise

    async def _ingest(self, client: aiomqtt.Client, receiver: EventReceiver) -> None:
        """Hand batches of what has arrived meanwhile to the writer, keeping ``IN_FLIGHT`` of
        them there (one per worker, and the next ready behind them), so the writer never
        waits for this process to ack one batch and gather the next. The writer commits
        batches in order; ``_acknowledge`` acks them in the same order."""
        limit, arrived = self.config.sync.batch_max, receiver.arrived
        slots = asyncio.Semaphore(IN_FLIGHT)
        written: asyncio.Queue[tuple[list[Received], asyncio.Task[Batch] | None]]
        written = asyncio.Queue()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._acknowledge(client, receiver, written, slots))
            while True:
                await receiver.wait()
                while arrived:
                    await slots.acquire()
                    batch = [arrived.popleft() for _ in range(min(limit, len(arrived)))]
                    events = await self._events_of(batch)
                    task = tg.create_task(self.writer.write(events)) if events else None
                    written.put_nowait((batch, task))

    async def _events_of(self, batch: list[Received]) -> list[tuple[str, str, bytes]]:
        """(node, topic, payload) of each message; one on a topic that names no box is
        quarantined here."""
        events: list[tuple[str, str, bytes]] = []
        for _, _, topic, payload in batch:
            try:
                node = _node_of(topic)
            except ContractError as exc:
                await self._quarantine(topic, None, "unknown", str(exc), payload)
                continue
            events.append((node, topic, payload))
        self.messages.labels(EdgeChannel.EVENTS.value).inc(len(events))
        return events

    async def _acknowledge(
        self,
        client: aiomqtt.Client,
        receiver: EventReceiver,
        written: asyncio.Queue[tuple[list[Received], asyncio.Task[Batch] | None]],
        slots: asyncio.Semaphore,
    ) -> None:
        """Once each batch is committed (every message of it is committed or quarantined):
        the PUBACKs first, so the broker's window of unacknowledged messages reopens at once,
        then the boxes' retained acks."""
        while True:
            batch, task = await written.get()
            result = await task if task is not None else None
            receiver.ack(batch)
            slots.release()
            if result is not None:
                await self._report(client, len(batch), result)

    async def _presence(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        try:
            parsed = topics.parse_edge_topic(topic)
        except ContractError as exc:
            await self._quarantine(topic, None, "unknown", str(exc), payload)
            return
        self.messages.labels(parsed.channel.value).inc()
        try:
            birth = await self.presence.handle(parsed.node, parsed.channel, payload)
        except ContractError as exc:
            await self._quarantine(topic, parsed.node, parsed.channel.value, str(exc), payload)
            return
        if birth is not None and self.box_config is not None:
            command = Command(
                node=birth.node, kind="config", args=self.box_config(birth.node, birth.township)
            )
            await client.publish(topics.edge_cmd(birth.node), command.to_payload(), qos=1)

    async def _report(self, client: aiomqtt.Client, size: int, result: Batch) -> None:
        self.batch_sizes.observe(size)
        for outcome, count in collections.Counter(result.outcomes).items():
            self.events.labels(outcome.value).inc(count)
        for topic, node, reason, _ in result.quarantine:
            self.quarantined.labels("events").inc()
            quiet.warning(
                f"q:{node}",
                "%s: quarantined event from %s on %s: %s",
                self.config.hub_id,
                node,
                topic,
                reason,
            )
        for node in result.flagged:
            log.error(
                "%s: box %s flagged: its event chain is broken; its stream is held",
                self.config.hub_id,
                node,
            )
        await asyncio.gather(  # one round trip to the broker for all of them
            *(
                client.publish(
                    topics.edge_ack(node),
                    Ack(node=node, acked_through=head).to_payload(),
                    qos=1,
                    retain=True,
                )
                for node, head in result.heads.items()
            )
        )
        if Outcome.HELD in result.outcomes:
            log.info(
                "%s: %d events held behind a gap",
                self.config.hub_id,
                result.outcomes.count(Outcome.HELD),
            )

    async def _quarantine(
        self, topic: str, node: str | None, channel: str, reason: str, payload: bytes
    ) -> None:
        self.quarantined.labels(channel).inc()
        qid = await self.store.quarantine(topic, node, reason, payload)
        quiet.warning(
            f"q:{node}",
            "%s: quarantined message #%d on %s: %s",
            self.config.hub_id,
            qid,
            topic,
            reason,
        )

    async def _resync_loop(self, client: aiomqtt.Client) -> None:
        """Ask boxes whose stream waits on a gap longer than the reorder time to resend."""
        timeout = dt.timedelta(seconds=self.config.sync.reorder_timeout)
        while True:
            await asyncio.sleep(RESYNC_CHECK_SECONDS)
            for node, from_seq in await self.store.overdue_gaps(timeout):
                command = Command(node=node, kind="resync", args={"from": from_seq})
                await client.publish(topics.edge_cmd(node), command.to_payload(), qos=1)
                log.warning(
                    "%s: gap in %s's events: asked for resync from seq %d",
                    self.config.hub_id,
                    node,
                    from_seq,
                )
