"""Hub → box messages: the retained cumulative ack and commands with their own id."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import Field

from contracts.wire import NodeId, WireModel, utcnow


class Ack(WireModel):
    """Retained on ``edge/{node}/ack``: every event with ``seq <= acked_through`` is committed."""

    v: Literal[1] = 1
    node: NodeId
    acked_through: int = Field(ge=0)


class Command(WireModel):
    """On ``edge/{node}/cmd``; ``id`` lets the box answer or ignore a repeat."""

    v: Literal[1] = 1
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=64)
    node: NodeId
    kind: Literal["resync", "config", "training"]
    args: dict[str, Any] = Field(default_factory=dict)
    ts: dt.datetime = Field(default_factory=utcnow)
