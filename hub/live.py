"""In-process fan-out of box changes to the console's live streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

Event = dict[str, Any]


class Broadcaster:
    """Each subscriber gets a bounded queue; one that falls behind is cut off (its stream
    ends and the browser reconnects for a fresh snapshot) rather than growing memory."""

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Event | None]] = set()

    def publish(self, event: Event) -> None:
        for q in list(self._subscribers):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers.discard(q)
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait(None)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, accept: Callable[[Event], bool] = lambda e: True
    ) -> AsyncIterator[AsyncIterator[Event]]:
        q: asyncio.Queue[Event | None] = asyncio.Queue(self._queue_size)
        self._subscribers.add(q)

        async def events() -> AsyncIterator[Event]:
            while (event := await q.get()) is not None:
                if accept(event):
                    yield event

        try:
            yield events()
        finally:
            self._subscribers.discard(q)
