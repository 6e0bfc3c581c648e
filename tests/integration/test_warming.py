"""Cache warming takes the most popular queries and most active users, once per period across workers."""

from __future__ import annotations

import pytest

from adapters.cache import Cache
from adapters.warming import LOCK_KEY, warm_once
from domain import cache_keys

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.seen: list[object] = []

    async def search(self, request):  # type: ignore[no-untyped-def]
        self.seen.append(request.query)

    async def recommend(self, request):  # type: ignore[no-untyped-def]
        self.seen.append(request.user_id)

    async def until_quiet(self) -> None:
        self.seen.append("quiet")


@pytest.fixture(params=["redis", "in-process"])
async def cache(request, redis_url):
    cache = Cache.connect(redis_url if request.param == "redis" else None, timeout_s=0.25)
    await cache.client.delete(LOCK_KEY, cache_keys.query_counts(), cache_keys.user_activity())
    yield cache
    await cache.client.delete(LOCK_KEY, cache_keys.query_counts(), cache_keys.user_activity())
    await cache.close()


async def test_warms_top_queries_and_users_once_per_period(cache):
    await cache.bump_scores(cache_keys.query_counts(), {"black heels": 9, "tote": 5, "rare thing": 1})
    await cache.bump_scores(cache_keys.user_activity(), {"7": 12, "8": 3})
    worker = Recorder()  # its searches, feeds and waits for quiet, in order
    assert await warm_once(cache, worker, worker, until_quiet=worker.until_quiet) == (3, 2)
    # each query and user waits for the worker to be between requests: warming answers nobody
    assert worker.seen == ["quiet", "black heels", "quiet", "tote", "quiet", "rare thing", "quiet", 7, "quiet", 8]
    # another worker in the same period finds the lock taken and does nothing
    other = Recorder()
    assert await warm_once(cache, other, other, until_quiet=other.until_quiet) == (0, 0)
    assert other.seen == []
