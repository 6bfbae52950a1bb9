"""The hub's media relay (SFU): one upstream per participant, encoded frames forwarded to every
subscriber without decoding or encoding (:mod:`hub.media.relay`) except for watchers that cannot
decode the publisher's video codec, who get one shared transcoded feed (:mod:`hub.media.transcode`),
and the agent that connects it to the signaling server (:mod:`hub.media.agent`).

The relay and the agent load aiortc; they are imported on first use so that reading the hub's
configuration (:class:`RelayConfig`) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.media.config import RelayConfig
from hub.media.errors import (
    CodecMismatch,
    NotPublishing,
    RelayClosed,
    RelayError,
    UnknownSubscription,
)

if TYPE_CHECKING:
    from hub.media.agent import RelayAgent
    from hub.media.relay import Relay
    from hub.media.sessions import RelayStats, SubscriptionStats
    from hub.media.transcode import TranscodeStats

__all__ = [
    "CodecMismatch",
    "NotPublishing",
    "Relay",
    "RelayAgent",
    "RelayClosed",
    "RelayConfig",
    "RelayError",
    "RelayStats",
    "SubscriptionStats",
    "TranscodeStats",
    "UnknownSubscription",
]

_LAZY = {
    "Relay": "hub.media.relay",
    "RelayStats": "hub.media.sessions",
    "SubscriptionStats": "hub.media.sessions",
    "TranscodeStats": "hub.media.transcode",
    "RelayAgent": "hub.media.agent",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
