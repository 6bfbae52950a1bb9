"""Box events on an MQTT connection of their own, read by paho's network thread.

Events are the hub's bulk traffic: thousands a second when boxes come back after a day offline.
Read through aiomqtt on the event loop, each message costs a loop iteration, a ``Message``
copy and a queue hand-off, about twice what paho's own threaded loop spends; here paho's thread
only appends each message to a deque and wakes the loop once per burst. The hub's state, box
presence, acks and commands stay on the main (aiomqtt) connection.

The session is persistent (``clean_session=False``) and PUBACKs are manual: the broker keeps
every event the hub has not committed and redelivers it after a reconnect. Each message is
tagged with the connection it came on; a PUBACK for a message of an earlier connection is not
sent (its packet id means nothing on the new one; the broker has redelivered it anyway). The
client is a ``runtime.bulkclient.BulkClient``: buffered reads, and a batch's PUBACKs in one
write.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Any, NamedTuple, Self

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from runtime.bulkclient import BulkClient
from runtime.config import MqttConfig
from runtime.mqtt import BrokerAddress, make_threaded_client
from runtime.resource import AsyncResource

log = logging.getLogger(__name__)


class Received(NamedTuple):
    """One event message, tagged with the connection it came on."""

    connection: int
    mid: int
    topic: str
    payload: bytes


class EventReceiver(AsyncResource):
    """Subscribe ``topic_filter`` (QoS 1) and collect what arrives in ``arrived``.

    Failing to connect raises ``aiomqtt.MqttError``, like the main connection, so the hub's
    connection loop retries both with its backoff.

    ``await wait()`` returns when something has arrived; ``ack(received)`` sends the PUBACKs
    once the events are committed.
    """

    def __init__(
        self, config: MqttConfig, broker: BrokerAddress, client_id: str, topic_filter: str
    ) -> None:
        self.config, self.broker, self.topic_filter = config, broker, topic_filter
        self.arrived: deque[Received] = deque()
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._signalled = False
        self._connection = 0
        self._subscribed = threading.Event()
        self._client = make_threaded_client(config, client_id, clean_session=False, kind=BulkClient)
        self._client.manual_ack_set(True)
        self._client.max_inflight_messages_set(1000)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_bulk_message = self._on_message
        self._started = False

    async def open(self) -> Self:
        if self._started:
            return self
        self._started = True
        try:
            await asyncio.to_thread(
                self._client.connect, self.broker.host, self.broker.port, self.config.keepalive
            )
        except OSError as exc:
            raise aiomqtt.MqttError(f"events connection to {self.broker} failed: {exc}") from exc
        self._client.loop_start()
        if not await asyncio.to_thread(self._subscribed.wait, 10):
            await self.close()
            raise aiomqtt.MqttError(f"events connection to {self.broker}: not subscribed in 10 s")
        return self

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    async def wait(self) -> None:
        await self._wake.wait()
        self._wake.clear()
        self._signalled = False

    def ack(self, batch: list[Received]) -> None:
        """PUBACK ``batch`` (all QoS 1), in one write."""
        current = self._connection
        self._client.ack_many(item.mid for item in batch if item.connection == current)

    # -- paho's thread ----------------------------------------------------------------

    def _on_connect(
        self, client: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if reason.is_failure:
            log.warning("events connection to %s refused: %s", self.broker, reason)
            return
        self._connection += 1
        client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(
        self, _c: paho.Client, _u: Any, _m: int, codes: list[ReasonCode], _p: Any
    ) -> None:
        if any(code.is_failure for code in codes):
            log.error("events subscription %s refused: %s", self.topic_filter, codes)
            return
        self._subscribed.set()

    def _on_message(self, mid: int, topic: str, payload: bytes) -> None:
        self.arrived.append(Received(self._connection, mid, topic, payload))
        if not self._signalled:
            self._signalled = True
            self._loop.call_soon_threadsafe(self._wake.set)
