"""One load at a time in the background, started on demand and stopped on close.

What the holders of a table read from the database share (the keyword vocabulary, the product types, the learned
ranking): a search never waits for a load, a load already running is not started twice, and closing the holder
cancels and awaits the one in flight. When a load is due is each holder's own rule.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class BackgroundLoad:
    def __init__(self, load: Callable[[], Coroutine[Any, Any, None]], *, name: str) -> None:
        self._load = load
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start a load unless one is running."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._load(), name=self._name)

    async def wait(self) -> None:
        """Wait for the load in progress, if any; shielded, so a waiter's cancellation does not stop it."""
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
