"""aiomqtt internals the hub relies on for PUBACK-after-commit: fail loudly if they change."""

from __future__ import annotations

import aiomqtt
import paho.mqtt.client as paho

from edge.sync.sender import WINDOW
from runtime.config import MqttConfig
from runtime.mqtt import BrokerAddress, enable_manual_ack, make_client


async def test_aiomqtt_wraps_a_paho_client_with_manual_ack() -> None:
    client = aiomqtt.Client("127.0.0.1", 1)  # never connected
    inner = getattr(client, "_client", None)
    assert isinstance(inner, paho.Client), "aiomqtt no longer exposes its paho client as _client"
    enable_manual_ack(client)
    assert inner._manual_ack is True
    assert callable(inner.ack)


async def test_make_client_sets_the_publish_window_on_the_paho_client() -> None:
    """The box's sender keeps ``window`` events beyond the hub's ack on the wire; at paho's
    default of 20 awaiting their PUBACK, a box back from a day offline sent its backlog at
    half the rate (the broker's round trip, not the hub, set the pace)."""
    config = MqttConfig(host="127.0.0.1", port=1)
    broker = BrokerAddress("127.0.0.1", 1)
    wide = make_client(config, broker, "box-w", None, max_inflight=WINDOW)
    assert wide._client.max_inflight_messages == WINDOW
    assert make_client(config, broker, "box-d", None)._client.max_inflight_messages == 20
