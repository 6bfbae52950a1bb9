"""Base for long-lived async resources: ``async with`` opens, and ``close()`` is safe twice."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncResource:
    """Subclasses implement ``open()`` (returning self) and an idempotent ``close()``."""

    async def open(self) -> Self:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
