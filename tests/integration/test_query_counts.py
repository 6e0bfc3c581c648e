"""Searches counted per query in the worker and sent to Redis once a second (adapters/query_counts.py)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from adapters.cache import Cache
from adapters.query_counts import QueryCounts
from domain import cache_keys

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis", "in-process"])
async def cache(request, redis_url):
    cache = Cache.connect(redis_url if request.param == "redis" else None, timeout_s=0.5)
    await cache.client.delete(cache_keys.query_counts())
    yield cache
    await cache.client.delete(cache_keys.query_counts())
    await cache.close()


async def scores(cache: Cache) -> dict[str, float]:
    return dict(await cache.top(cache_keys.query_counts(), limit=10))


async def test_counts_reach_redis_within_an_interval_as_one_query_per_spelling(cache):
    counts = QueryCounts(cache, interval_s=0.05)
    flushing = asyncio.create_task(counts.run())
    try:
        for query in ("Red Dress", "red  dress", " red dress", "tote"):
            counts.count(query)
        assert await scores(cache) == {}  # held in the worker until the next flush
        await asyncio.sleep(0.2)
        assert await scores(cache) == {"red dress": 3.0, "tote": 1.0}
        counts.count("tote")
        await asyncio.sleep(0.2)
        assert await scores(cache) == {"red dress": 3.0, "tote": 2.0}  # each count is sent once
    finally:
        flushing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flushing


async def test_a_stopping_worker_sends_what_it_holds(cache):
    counts = QueryCounts(cache, interval_s=3600)
    counts.count("linen shirt")
    await counts.flush()
    assert await scores(cache) == {"linen shirt": 1.0}


async def test_counting_never_fails_a_search_when_redis_is_down():
    cache = Cache.connect("redis://127.0.0.1:1/0", timeout_s=0.25)
    try:
        counts = QueryCounts(cache)
        counts.count("boots")
        await counts.flush()  # best effort: that second's counts are lost, nothing raises
    finally:
        await cache.close()
