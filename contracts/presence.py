"""Box and hub presence: birth, death (the MQTT will) and the hub's state.

Sparkplug's rule: every connect gets a new ``bd_seq``; the will carries the same ``bd_seq`` as the
birth it belongs to, so a will that arrives late (a stale connection timing out after the box has
already reconnected) is recognised and ignored.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, TypeAdapter

from contracts.divisions import Tier, parse_tier
from contracts.wire import NodeId, WireModel, decode_as, utcnow


def _township(value: str) -> str:
    return parse_tier(value, Tier.TOWNSHIP).code


TownshipCode = Annotated[str, AfterValidator(_township)]


class Birth(WireModel):
    """Retained on ``edge/{node}/status`` after each connect, once the hub is online."""

    v: Literal[1] = 1
    state: Literal["online"] = "online"
    node: NodeId
    township: TownshipCode
    version: str = Field(max_length=64)
    bd_seq: int = Field(ge=0)
    ts: dt.datetime = Field(default_factory=utcnow)
    kiosk_port: int | None = Field(default=None, ge=1, le=65535)
    outbox_head: int = Field(default=0, ge=0, description="highest seq written to the outbox")
    acked_through: int = Field(default=0, ge=0, description="highest seq the hub acked")


class Death(WireModel):
    """The box's last will (and its clean goodbye): ``offline`` for one ``bd_seq``."""

    v: Literal[1] = 1
    state: Literal["offline"] = "offline"
    node: NodeId
    bd_seq: int = Field(ge=0)


EdgeStatus = Annotated[Birth | Death, Field(discriminator="state")]


_STATUS: TypeAdapter[Birth | Death] = TypeAdapter(EdgeStatus)


def decode_status(payload: bytes | bytearray | str) -> Birth | Death:
    """Parse a status payload into ``Birth`` or ``Death`` by its ``state`` field."""
    return decode_as(_STATUS, "EdgeStatus", payload)


class HubState(WireModel):
    """Retained on ``hub/{hub}/state``: ``online`` while the hub runs, its will ``offline``."""

    v: Literal[1] = 1
    state: Literal["online", "offline"]
    hub: NodeId
    ts: dt.datetime | None = None
