"""Components (adapters/components.py) start and close on the embedded default (SQLite, in-process cache):
closing cancels and awaits every background task, including query counts still in flight."""

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


async def test_close_cancels_and_awaits_query_tracking_and_the_loops(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url)
    components = Components(settings, encoder_runner=SilentRunner(), index_runner=SilentRunner())
    await components.start()
    stuck = asyncio.Event()

    async def hanging_bump(key: str, member: str, amount: float = 1.0) -> None:
        stuck.set()
        await asyncio.sleep(3600)  # a cache call that has not come back

    components.cache.bump_score = hanging_bump  # type: ignore[method-assign]
    components.track_query("red dress")
    await stuck.wait()
    [tracking] = components._background
    loops = list(components._tasks)
    assert len(loops) == 2 and not any(task.done() for task in [tracking, *loops])

    await asyncio.wait_for(components.close(), timeout=5)
    assert tracking.cancelled() and all(task.cancelled() for task in loops)
    assert components._background == set()
