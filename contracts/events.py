"""The outbox event envelope: one row of a box's hash-chained, gap-free event stream."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from contracts.chain import record_hash, seal
from contracts.wire import NodeId, WireModel


class EventEnvelope(WireModel):
    """Published on ``edge/{node}/events``; ``(node, seq)`` is unique and ``seq`` never resets."""

    v: Literal[1] = 1
    node: NodeId
    seq: int = Field(ge=1, lt=2**63)
    type: str = Field(min_length=1, max_length=64, description="e.g. case.registered")
    schema_version: int = Field(default=1, ge=1, description="version of the body's schema")
    ts: dt.datetime
    body: dict[str, Any]
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    @classmethod
    def create(
        cls,
        *,
        node: str,
        seq: int,
        type: str,
        ts: dt.datetime,
        body: dict[str, Any],
        prev_hash: str,
        schema_version: int = 1,
    ) -> EventEnvelope:
        """Build and seal an event linked to ``prev_hash``."""
        draft = cls(
            node=node,
            seq=seq,
            type=type,
            schema_version=schema_version,
            ts=ts,
            body=body,
            prev_hash=prev_hash,
            hash="0" * 64,
        )
        return cls.model_validate(seal(draft.chain_record(), prev_hash))

    def chain_record(self) -> dict[str, Any]:
        """The JSON form the hash is computed over (``ts`` as ISO text)."""
        return self.model_dump(mode="json")

    def hash_ok(self) -> bool:
        return record_hash(self.chain_record()) == self.hash
