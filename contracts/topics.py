"""MQTT topics, built only here. All live under the version prefix ``xfv/v1``.

| topic                          | direction  | retained | payload                      |
|--------------------------------|------------|----------|------------------------------|
| ``xfv/v1/edge/{node}/status``  | edge → hub | yes      | ``Birth`` / will ``Death``   |
| ``xfv/v1/edge/{node}/events``  | edge → hub | no       | one ``EventEnvelope``        |
| ``xfv/v1/edge/{node}/ack``     | hub → edge | yes      | ``Ack``                      |
| ``xfv/v1/edge/{node}/cmd``     | hub → edge | no       | ``Command``                  |
| ``xfv/v1/edge/{node}/telemetry``| edge → hub| no       | ``Telemetry``                |
| ``xfv/v1/hub/{hub}/state``     | hub → all  | yes      | ``HubState``                 |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from contracts.errors import InvalidNodeId, InvalidTopic

PREFIX = "xfv/v1"
_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class EdgeChannel(StrEnum):
    """The per-box topics under ``xfv/v1/edge/{node}/``."""

    STATUS = "status"
    EVENTS = "events"
    ACK = "ack"
    CMD = "cmd"
    TELEMETRY = "telemetry"


def check_id(value: str, what: str = "node id") -> str:
    """Return ``value`` if it can be one topic level (lowercase letters, digits, '-', '_')."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise InvalidNodeId(
            f"{what} must be 1-63 lowercase letters, digits, '-' or '_' "
            f"starting with a letter or digit, got {value!r}"
        )
    return value


def edge_topic(node: str, channel: EdgeChannel) -> str:
    """The topic of one box's channel, e.g. ``xfv/v1/edge/box-1/status``."""
    return f"{PREFIX}/edge/{check_id(node)}/{channel.value}"


def edge_status(node: str) -> str:
    return edge_topic(node, EdgeChannel.STATUS)


def edge_events(node: str) -> str:
    return edge_topic(node, EdgeChannel.EVENTS)


def edge_ack(node: str) -> str:
    return edge_topic(node, EdgeChannel.ACK)


def edge_cmd(node: str) -> str:
    return edge_topic(node, EdgeChannel.CMD)


def edge_telemetry(node: str) -> str:
    return edge_topic(node, EdgeChannel.TELEMETRY)


def hub_state(hub: str) -> str:
    """The hub's retained ``online``/``offline`` state topic."""
    return f"{PREFIX}/hub/{check_id(hub, 'hub id')}/state"


def all_edges(channel: EdgeChannel) -> str:
    """Subscription filter for one channel of every box, e.g. ``xfv/v1/edge/+/status``."""
    return f"{PREFIX}/edge/+/{channel.value}"


ALL_HUB_STATES = f"{PREFIX}/hub/+/state"
"""Subscription filter for every hub's state."""


@dataclass(frozen=True, slots=True)
class EdgeTopic:
    """A parsed per-box topic."""

    node: str
    channel: EdgeChannel


def parse_edge_topic(topic: str) -> EdgeTopic:
    """Split ``xfv/v1/edge/{node}/{channel}``.

    Raises ``InvalidTopic`` for another layout or channel, ``InvalidNodeId`` for a bad node.
    """
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != f"{PREFIX}/edge":
        raise InvalidTopic(f"not a per-box topic under {PREFIX}/edge: {topic!r}")
    try:
        channel = EdgeChannel(parts[4])
    except ValueError:
        raise InvalidTopic(f"unknown channel {parts[4]!r} in topic {topic!r}") from None
    return EdgeTopic(check_id(parts[3]), channel)


def parse_hub_topic(topic: str) -> str:
    """The hub id of ``xfv/v1/hub/{hub}/state`` (raises ``InvalidTopic`` otherwise)."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != f"{PREFIX}/hub" or parts[4] != "state":
        raise InvalidTopic(f"not a hub state topic: {topic!r}")
    return check_id(parts[3], "hub id")
