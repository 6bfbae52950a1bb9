"""aiomqtt internals the hub relies on for PUBACK-after-commit: fail loudly if they change."""

from __future__ import annotations

import aiomqtt
import paho.mqtt.client as paho

from runtime.mqtt import enable_manual_ack


async def test_aiomqtt_wraps_a_paho_client_with_manual_ack() -> None:
    client = aiomqtt.Client("127.0.0.1", 1)  # never connected
    inner = getattr(client, "_client", None)
    assert isinstance(inner, paho.Client), "aiomqtt no longer exposes its paho client as _client"
    enable_manual_ack(client)
    assert inner._manual_ack is True
    assert callable(inner.ack)
