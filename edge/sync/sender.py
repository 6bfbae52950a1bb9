"""Publishing the outbox: in ``seq`` order, QoS 1, at most ``window`` events beyond the hub's ack.

The hub's retained cumulative ack (``edge/{node}/ack``) is the only thing that makes an event
delivered; a PUBACK from the broker only means the broker has it. On every connect the sender
starts again from ``acked_through + 1``; a ``resync`` command rewinds it to the seq asked for.
"""

from __future__ import annotations

import asyncio
import logging

import aiomqtt

from contracts import topics
from contracts.commands import Ack
from contracts.errors import ContractError
from contracts.wire import decode
from edge.store.db import EdgeStore
from runtime.logs import QuietLogger

log = logging.getLogger(__name__)
quiet = QuietLogger(log)


WINDOW = 500
"""Events on the wire beyond the hub's cumulative ack (the box's MQTT client lets as many
await their PUBACK from the broker)."""
BATCH = 200
"""Outbox rows read per query."""


class OutboxSender:
    def __init__(
        self, node: str, store: EdgeStore, window: int = WINDOW, batch: int = BATCH
    ) -> None:
        self.node = node
        self.store = store
        self.window = window
        self.batch = batch
        self.acked = 0
        self.sent = 0
        self.published = 0
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """New rows are in the outbox."""
        self._wake.set()

    async def run(self, client: aiomqtt.Client) -> None:
        """Publish until the connection ends (raises ``MqttError``) or is cancelled."""
        self.acked = (await self.store.sync_state()).acked_through
        self.sent = self.acked
        topic = topics.edge_events(self.node)
        client.pending_calls_threshold = self.window + 50
        async with asyncio.TaskGroup() as tg:
            while True:
                self._wake.clear()
                room = self.acked + self.window - self.sent
                rows = (
                    await self.store.pending(self.sent, min(room, self.batch)) if room > 0 else []
                )
                for seq, payload in rows:
                    # publish() hands the message to paho before its first await, so tasks
                    # started in this order go on the wire in seq order.
                    tg.create_task(client.publish(topic, payload, qos=1))
                    self.sent = seq
                    self.published += 1
                if not rows:
                    await self._wake.wait()
                else:
                    await asyncio.sleep(0)

    async def on_ack(self, payload: bytes) -> None:
        try:
            ack = decode(Ack, payload)
        except ContractError as exc:
            quiet.warning("ack", "%s: ignoring malformed ack: %s", self.node, exc)
            return
        if ack.node != self.node:
            return
        self.acked = await self.store.mark_acked(ack.acked_through)
        self.sent = max(self.sent, self.acked)
        self._wake.set()

    def resync(self, start: int) -> None:
        """The hub asked to resend from ``start`` (it saw a gap)."""
        log.warning("%s: hub asked to resend from seq %d", self.node, start)
        self.sent = min(self.sent, max(start - 1, self.acked))
        self._wake.set()
