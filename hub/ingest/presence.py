"""Presence: the boxes' births, deaths and telemetry projected into the registry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from contracts.errors import MalformedMessage
from contracts.presence import Birth, decode_status
from contracts.telemetry import Telemetry
from contracts.topics import EdgeChannel
from contracts.wire import decode
from hub.store.db import EdgeRow, HubStore

log = logging.getLogger(__name__)


class PresenceIngest:
    def __init__(self, hub_id: str, store: HubStore, on_change: Callable[[EdgeRow], None]) -> None:
        self.hub_id = hub_id
        self.store = store
        self.on_change = on_change

    async def handle(self, node: str, channel: EdgeChannel, payload: bytes) -> Birth | None:
        """Apply one status or telemetry message; returns the birth if it was one. Raises
        ``ContractError`` for bad input."""
        row: EdgeRow | None = None
        birth: Birth | None = None
        if channel is EdgeChannel.STATUS:
            if not payload:
                return None  # a retained status being cleared
            status = decode_status(payload)
            same_node(node, status.node)
            if isinstance(status, Birth):
                birth = status
                row = await self.store.record_birth(status)
                log.info(
                    "%s: box %s online (bd_seq %d, %s)",
                    self.hub_id,
                    node,
                    status.bd_seq,
                    status.version,
                )
            else:
                row = await self.store.record_death(status)
                if row is None:
                    log.info(
                        "%s: ignored stale offline of %s (bd_seq %d)",
                        self.hub_id,
                        node,
                        status.bd_seq,
                    )
                else:
                    log.info("%s: box %s offline (bd_seq %d)", self.hub_id, node, status.bd_seq)
        elif channel is EdgeChannel.TELEMETRY:
            report = decode(Telemetry, payload)
            same_node(node, report.node)
            row = await self.store.record_telemetry(report)
        if row is not None:
            self.on_change(row)
        return birth


def same_node(topic_node: str, payload_node: Any) -> None:
    if payload_node != topic_node:
        raise MalformedMessage(
            f"payload names node {payload_node!r} but was published on {topic_node!r}'s topic"
        )
