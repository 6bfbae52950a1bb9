"""Announcing the box and finding the hub's broker with zeroconf."""

from __future__ import annotations

import asyncio
import logging

from edge.config import EdgeConfig
from runtime.mdns import EDGE_SERVICE, HUB_SERVICE, Announcer, browse
from runtime.mqtt import Backoff, BrokerAddress

log = logging.getLogger(__name__)


def edge_announcer(config: EdgeConfig, kiosk_port: int, version: str) -> Announcer:
    """``_xfv-edge._tcp.local.`` with TXT node id, township, version and kiosk port."""
    return Announcer(
        EDGE_SERVICE,
        config.node_id,
        kiosk_port,
        {
            "node": config.node_id,
            "township": config.township,
            "version": version,
            "kiosk_port": str(kiosk_port),
        },
        config.discovery.interfaces,
    )


async def find_broker(config: EdgeConfig) -> BrokerAddress:
    """The configured broker, or the one the hub announces; browses until one answers."""
    if config.mqtt.host:
        return BrokerAddress(config.mqtt.host, config.mqtt.port)
    backoff = Backoff(config.mqtt.reconnect_min, config.mqtt.reconnect_max)
    while True:
        hubs = await browse(
            [HUB_SERVICE],
            config.hub_discovery.browse_seconds,
            config.discovery.interfaces,
        )
        for hub in hubs:
            if config.hub_id and hub.properties.get("hub") != config.hub_id:
                continue
            host = hub.properties.get("mqtt_host") or (hub.addresses[0] if hub.addresses else "")
            port = hub.properties.get("mqtt_port", "")
            if host and port.isdigit():
                log.info("%s: found hub %s, broker %s:%s", config.node_id, hub.instance, host, port)
                return BrokerAddress(host, int(port))
        delay = backoff.next_delay()
        log.warning(
            "%s: no hub announced on the network; browsing again in %.1fs", config.node_id, delay
        )
        await asyncio.sleep(delay)
