"""Cache writes that no answer depends on go behind the answer (adapters/cache.py `write_behind`).

Real Redis holds writes back with `CLIENT PAUSE ... WRITE` (reads still answer): a request must answer without
waiting for its result to be stored, and the store must still land once Redis takes writes again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from pydantic import BaseModel

from adapters import cache as cache_module
from adapters.cache import Cache
from domain.api_models import SearchRequest
from domain.search import SearchPipeline
from tests.unit.fakes import FakeCatalog, FakeEncoder, FakeIndex, catalog_rows

pytestmark = pytest.mark.integration


class Kept(BaseModel):
    value: int


@pytest.fixture
def hold_writes(redis_url: str) -> Iterator[None]:
    """Redis takes no write for 0.4 s from now, and answers reads meanwhile."""
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("CLIENT", "PAUSE", "400", "WRITE")
    try:
        yield
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()


@pytest.fixture
async def cache(redis_url: str):
    cache = Cache.connect(redis_url, timeout_s=1.0)  # longer than the pause: a held write lands, late
    await cache.ping()
    yield cache
    await cache.close()


def fresh_key() -> str:
    return f"vitrine:test:behind:{uuid.uuid4().hex}"


async def test_a_write_behind_returns_at_once_and_lands_once_redis_takes_writes(cache, hold_writes):
    key = fresh_key()
    started = time.perf_counter()
    cache.keep_model(key, Kept(value=7), ttl=30, kind="search")
    assert time.perf_counter() - started < 0.05
    assert await cache.get_model(key, Kept, kind="search") is None  # reads answer during the pause; not there yet
    await cache.writes_landed()
    assert time.perf_counter() - started >= 0.3  # it waited for Redis, not the caller
    assert await cache.get_model(key, Kept, kind="search") == Kept(value=7)
    assert 0 < await cache.client.ttl(key) <= 30
    assert cache.available and cache.last_error is None


async def test_a_search_answers_before_its_result_is_stored_and_the_next_one_finds_it(cache, hold_writes):
    vectors, _prices, rows = catalog_rows(50)
    index = FakeIndex(vectors, rows)
    tag = f"model:{uuid.uuid4().hex}"  # keys of its own: nothing left by another run
    pipeline = SearchPipeline(
        encoder=FakeEncoder(),
        index=index,
        catalog=FakeCatalog(rows),
        cache=cache,
        model_tag=lambda: tag,
        index_version=lambda: index.version,
    )
    request = SearchRequest(query="shoes", limit=5)

    started = time.perf_counter()
    first = await pipeline.search(request)
    assert time.perf_counter() - started < 0.2, "the answer waited for Redis to take its write"
    assert not first.cached and first.results

    await cache.writes_landed()
    second = await pipeline.search(request)
    assert second.cached and [r.product_id for r in second.results] == [r.product_id for r in first.results]


async def test_past_the_cap_writes_are_dropped_and_counted_not_queued(cache, hold_writes, monkeypatch):
    monkeypatch.setattr(cache_module, "MAX_WRITES_BEHIND", 2)
    keys = [fresh_key() for _ in range(3)]
    for key in keys:
        cache.keep_model(key, Kept(value=1), ttl=30, kind="search")
    assert cache.writes_dropped == 1
    await cache.writes_landed()
    assert [await cache.get_model(key, Kept, kind="search") for key in keys] == [Kept(value=1), Kept(value=1), None]


async def test_closing_lets_the_writes_behind_land(redis_url, hold_writes):
    cache = Cache.connect(redis_url, timeout_s=1.0)
    await cache.ping()
    key = fresh_key()
    cache.keep_model(key, Kept(value=3), ttl=30, kind="search")
    await cache.close()

    reader = Cache.connect(redis_url, timeout_s=1.0)
    try:
        assert await reader.get_model(key, Kept, kind="search") == Kept(value=3)
    finally:
        await reader.close()


async def test_with_the_cache_off_nothing_is_written_or_left_pending(redis_url):
    cache = Cache.connect(redis_url, timeout_s=1.0, enabled=False)
    key = fresh_key()
    cache.keep_model(key, Kept(value=1), ttl=30, kind="search")
    await cache.writes_landed()
    cache.enabled = True
    try:
        assert await cache.get_model(key, Kept, kind="search") is None
        assert cache.writes_dropped == 0
    finally:
        await cache.close()


async def test_an_answer_kept_in_another_shape_reads_as_a_miss(cache):
    key = fresh_key()
    await cache.set_json(key, {"value": "not a number"}, ttl=30, kind="search")  # as an older release kept it
    assert await cache.get_model(key, Kept, kind="search") is None
