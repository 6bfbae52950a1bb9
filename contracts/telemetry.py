"""Box health, published on ``edge/{node}/telemetry`` every few seconds."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from contracts.wire import NodeId, WireModel, utcnow


class Telemetry(WireModel):
    v: Literal[1] = 1
    node: NodeId
    ts: dt.datetime = Field(default_factory=utcnow)
    uptime_s: float = Field(ge=0, description="seconds since the box booted")
    process_uptime_s: float = Field(ge=0, description="seconds since the edge process started")
    load1: float = Field(ge=0)
    load5: float = Field(ge=0)
    load15: float = Field(ge=0)
    mem_total: int = Field(ge=0, description="bytes")
    mem_available: int = Field(ge=0, description="bytes")
    disk_total: int = Field(ge=0, description="bytes of the data directory's filesystem")
    disk_free: int = Field(ge=0, description="bytes free for the data directory")
    cpu_temp_c: float | None = Field(default=None, description="None where the platform has none")
    outbox_depth: int = Field(default=0, ge=0, description="events not yet acked by the hub")
