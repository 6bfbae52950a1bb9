"""The hub's media relay (SFU): one upstream per participant, encoded frames forwarded to every
subscriber without decoding or encoding. See :mod:`hub.media.relay`."""

from __future__ import annotations

from hub.media.config import RelayConfig
from hub.media.errors import (
    CodecMismatch,
    NotPublishing,
    RelayClosed,
    RelayError,
    UnknownSubscription,
)
from hub.media.relay import Relay, RelayStats

__all__ = [
    "CodecMismatch",
    "NotPublishing",
    "Relay",
    "RelayClosed",
    "RelayConfig",
    "RelayError",
    "RelayStats",
    "UnknownSubscription",
]
