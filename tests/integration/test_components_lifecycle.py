"""Components (adapters/components.py) start and close on the embedded default (SQLite, in-process cache):
closing cancels and awaits every background task, and sends the query counts the worker still holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.components import Components
from domain.settings import Settings

pytestmark = pytest.mark.integration


class SilentRunner:
    """A runner that never answers: the poll loop keeps waiting, as before the runners are up."""

    def __getattr__(self, name: str) -> Any:
        raise ConnectionError("not up")


async def test_close_cancels_the_loops_and_sends_the_query_counts_still_held(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url)
    components = Components(settings, encoder_runner=SilentRunner(), index_runner=SilentRunner())
    await components.start()
    sent: list[dict[str, float]] = []

    async def bump_scores(key: str, amounts: dict[str, float]) -> None:
        sent.append(dict(amounts))

    components.cache.bump_scores = bump_scores  # type: ignore[method-assign]
    components.track_query("Red Dress")
    components.track_query("red dress")
    loops = list(components._tasks)
    assert len(loops) == 3 and not any(task.done() for task in loops)  # loop lag, warming, query counts

    await asyncio.wait_for(components.close(), timeout=5)
    assert all(task.cancelled() for task in loops)
    assert sent == [{"red dress": 2}]  # held for the next second's flush, sent on the way out instead
