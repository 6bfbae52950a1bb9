"""Keyframe requests from many subscribers, forwarded upstream to one publisher, throttled.

Every subscriber that joins, overflows or reports picture loss needs a keyframe, and every
keyframe costs the publisher's uplink a burst of bits and every other subscriber a bitrate
spike. So, as mediasoup and Janus do, requests are merged: at most one PLI per ``interval``
goes upstream; a keyframe arriving for any reason satisfies every request made before it; when
no keyframe follows a PLI within ``retry``, the PLI is sent once more, then the requester gives
up until someone asks again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyframeStats:
    asked: int
    """requests from subscribers (joins, overflows, PLI/FIR)"""
    sent: int
    """PLIs sent upstream, retries included"""
    retries: int
    gave_up: int
    keyframes: int
    """keyframes that arrived from the publisher"""


class KeyframeRequester:
    """Merges keyframe requests for one publisher's video; :meth:`run` is its worker loop."""

    def __init__(
        self,
        send: Callable[[], Awaitable[bool]],
        *,
        interval: float = 1.0,
        retry: float = 1.0,
        name: str = "",
    ) -> None:
        self._send = send
        self._interval = interval
        self._retry = retry
        self._name = name
        self._wanted = asyncio.Event()
        self._keyframe = asyncio.Event()
        self._retrying = False
        self._next_allowed = 0.0
        self._asked = 0
        self._sent = 0
        self._retries = 0
        self._gave_up = 0
        self._keyframes = 0

    @property
    def stats(self) -> KeyframeStats:
        return KeyframeStats(
            asked=self._asked,
            sent=self._sent,
            retries=self._retries,
            gave_up=self._gave_up,
            keyframes=self._keyframes,
        )

    @property
    def pending(self) -> bool:
        """Whether some request is not yet satisfied by a keyframe."""
        return self._wanted.is_set()

    def want(self) -> None:
        """Someone needs a keyframe (any keyframe from now on will do)."""
        self._asked += 1
        if not self._wanted.is_set():
            self._retrying = False
            self._keyframe.clear()
            self._wanted.set()

    def keyframe_arrived(self) -> None:
        """A keyframe came from the publisher: every request so far is satisfied."""
        self._keyframes += 1
        self._wanted.clear()
        self._retrying = False
        self._keyframe.set()

    async def run(self) -> None:
        """Send PLIs while requests are pending; returns only when cancelled."""
        while True:
            await self._wanted.wait()
            delay = self._next_allowed - time.monotonic()
            if delay > 0:
                await self._until_keyframe(delay)  # a keyframe may make the PLI unneeded
                continue
            self._keyframe.clear()
            try:
                sent = await self._send()
            except Exception:
                logger.exception("%s: sending a keyframe request upstream failed", self._name)
                sent = False
            self._next_allowed = time.monotonic() + self._interval
            if not sent:
                continue  # no media heard yet: try again after the interval
            self._sent += 1
            if self._retrying:
                self._retries += 1
            if await self._until_keyframe(self._retry):
                continue
            if not self._wanted.is_set():
                continue
            if not self._retrying:
                self._retrying = True
                logger.debug("%s: no keyframe after a request, asking again", self._name)
                continue
            self._gave_up += 1
            self._retrying = False
            self._wanted.clear()
            logger.warning("%s: publisher sent no keyframe after two requests", self._name)

    async def _until_keyframe(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._keyframe.wait()
        except TimeoutError:
            return False
        return True
