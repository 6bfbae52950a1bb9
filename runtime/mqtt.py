"""The asyncio MQTT connection loop both the box and the hub run.

``aiomqtt`` drives paho on the event loop (socket reader/writer callbacks; no paho thread, so
callbacks never touch the database from a foreign thread). A new client is built for every
connect because the will must change with every connect: it carries that connection's
``bd_seq`` (Sparkplug's rule), so a stale will is recognisable.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from runtime.config import MqttConfig, read_secret

ClientT = TypeVar("ClientT", bound=paho.Client)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class WillMessage:
    topic: str
    payload: bytes


class Backoff:
    """Exponential reconnect delays with full jitter, reset after a good connection."""

    def __init__(self, first: float, largest: float) -> None:
        self.first, self.largest = first, largest
        self._next = first

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.largest)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._next = self.first


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    ctx = ssl.create_default_context(cafile=config.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def password_of(config: MqttConfig, config_dir: Path | None = None) -> str | None:
    return read_secret(config.password_file, config_dir) if config.password_file else None


def make_threaded_client(
    config: MqttConfig, client_id: str, *, clean_session: bool, kind: type[ClientT]
) -> ClientT:
    """A plain paho client of class ``kind`` (for ``loop_start()``: its own network thread)
    with the same credentials, TLS and reconnect delays as ``make_client``'s."""
    client = kind(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
    if config.username:
        client.username_pw_set(config.username, password_of(config))
    context = tls_context(config)
    if context is not None:
        client.tls_set_context(context)
    client.reconnect_delay_set(
        max(1, round(config.reconnect_min)), max(1, round(config.reconnect_max))
    )
    return client


def make_client(
    config: MqttConfig,
    broker: BrokerAddress,
    client_id: str,
    will: WillMessage | None,
    *,
    clean_session: bool = True,
    config_dir: Path | None = None,
    max_inflight: int | None = None,
) -> aiomqtt.Client:
    """Build (not connect) a client for ``broker`` with ``will`` as its retained QoS 1 will;
    ``max_inflight``: QoS 1 publishes awaiting their PUBACK at once (paho's default is 20)."""
    return aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=client_id,
        username=config.username,
        password=password_of(config, config_dir),
        keepalive=config.keepalive,
        clean_session=clean_session,
        tls_context=tls_context(config),
        timeout=10,
        will=aiomqtt.Will(will.topic, will.payload, qos=1, retain=True) if will else None,
        max_inflight_messages=max_inflight,
    )


Session = Callable[[aiomqtt.Client], Awaitable[None]]


async def connection_loop(
    *,
    name: str,
    config: MqttConfig,
    broker: Callable[[], Awaitable[BrokerAddress]],
    client: Callable[[BrokerAddress], Awaitable[aiomqtt.Client]],
    session: Session,
    on_state: Callable[[bool], None] | None = None,
) -> None:
    """Connect, run ``session`` while connected, reconnect with backoff; forever until cancelled.

    ``broker`` is awaited before each attempt (it may browse zeroconf); ``client`` builds a fresh
    client for each attempt (it may bump ``bd_seq``). ``session`` returning ends the connection
    normally and the loop reconnects at once; an ``MqttError`` reconnects after a delay.
    """
    backoff = Backoff(config.reconnect_min, config.reconnect_max)
    while True:
        address = await broker()
        mqtt = await client(address)
        connected = False
        failure: BaseException | None = None
        try:
            async with mqtt:
                connected = True
                log.info("%s: connected to broker %s", name, address)
                if on_state:
                    on_state(True)
                backoff.reset()
                await session(mqtt)
                continue
        except* aiomqtt.MqttError as group:  # a session's task group may raise several
            failure = first_leaf(group)
        finally:
            if on_state and connected:
                on_state(False)
        delay = backoff.next_delay()
        verb = "lost connection to" if connected else "cannot connect to"
        log.warning("%s: %s broker %s: %s; retry in %.1fs", name, verb, address, failure, delay)
        await asyncio.sleep(delay)


def first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception in a (possibly nested) exception group."""
    first = group.exceptions[0]
    return first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def enable_manual_ack(client: aiomqtt.Client) -> None:
    """Send PUBACKs only when ``ack_message`` is called (after the database commit).

    aiomqtt 2.x has no public switch for this; it wraps a paho client as ``_client``.
    ``tests/runtime/test_mqtt_internals.py`` fails loudly if that ever changes.
    """
    client._client.manual_ack_set(True)


def ack_message(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """PUBACK one received QoS 1 message (a no-op for QoS 0)."""
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)
