"""The waiting queue: boxes' requests for a reception, oldest first, until an official accepts.

In memory only: a restart of the signaling server empties it (boxes ask again when they
reconnect). A box has at most one waiting request.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field

from contracts.access import Claims
from contracts.cases import Category
from contracts.divisions import Tier
from contracts.places import place_name
from contracts.signaling import QueueEntry


@dataclass
class Request:
    """One box's waiting request."""

    node: str
    township: str
    case_no: str
    summary: str
    category: Category
    since: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    since_mono: float = field(default_factory=time.monotonic)
    request_id: str = field(default_factory=lambda: f"r-{uuid.uuid4().hex}")
    sent_position: int | None = None
    """The position last told to the box (to tell it again only when it moves)."""

    @property
    def county(self) -> str:
        return self.township[: Tier.COUNTY.value]

    def waited_s(self) -> float:
        return max(0.0, time.monotonic() - self.since_mono)

    def entry(self) -> QueueEntry:
        return QueueEntry(
            request_id=self.request_id,
            node=self.node,
            township=self.township,
            township_name=place_name(self.township),
            case_no=self.case_no,
            summary=self.summary,
            category=self.category,
            waiting_since=self.since,
        )


class WaitingQueue:
    """Requests in arrival order, found by id or by box."""

    def __init__(self) -> None:
        self._by_id: dict[str, Request] = {}  # dicts keep insertion (arrival) order

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[Request]:
        return list(self._by_id.values())

    def add(self, request: Request) -> Request:
        self._by_id[request.request_id] = request
        return request

    def get(self, request_id: str) -> Request | None:
        return self._by_id.get(request_id)

    def of_box(self, node: str) -> Request | None:
        return next((r for r in self._by_id.values() if r.node == node), None)

    def remove(self, request_id: str) -> Request | None:
        return self._by_id.pop(request_id, None)

    def visible_to(self, claims: Claims) -> list[QueueEntry]:
        """The entries an official whose jurisdiction covers the box's township sees."""
        return [r.entry() for r in self._by_id.values() if claims.covers(r.township)]

    def position(self, request: Request) -> int:
        """1 + the requests of the same county that arrived earlier (they compete for the
        same officials)."""
        before = 0
        for r in self._by_id.values():
            if r is request:
                break
            before += r.county == request.county
        return before + 1
