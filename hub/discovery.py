"""Announcing the hub as ``_xfv-hub._tcp.local.`` so boxes without a broker setting find it."""

from __future__ import annotations

from hub.config import HubConfig
from runtime.mdns import HUB_SERVICE, Announcer


def hub_announcer(config: HubConfig, http_port: int, version: str) -> Announcer:
    props = {
        "hub": config.hub_id,
        "version": version,
        "mqtt_port": str(config.announce.mqtt_port or config.mqtt.port),
        "mqtt_tls": "1" if config.mqtt.tls else "0",
    }
    host = config.announce.mqtt_host or (
        config.mqtt.host if config.mqtt.host not in ("127.0.0.1", "localhost", "::1") else None
    )
    if host:
        props["mqtt_host"] = host
    return Announcer(HUB_SERVICE, config.hub_id, http_port, props, config.discovery.interfaces)
