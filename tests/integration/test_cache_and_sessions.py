"""The cache adapter and the session store on real Redis (and the in-process fallback)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from adapters.cache import Cache
from adapters.erasure import Fenced, FencedWrites, advance, write_if_unchanged, write_unless_erased
from adapters.user_state import CacheSessionStore, CacheUserVersions
from domain import cache_keys
from domain.interactions import InteractionType
from domain.ports import SessionSnapshot
from domain.session import SessionState

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis", "in-process"])
async def cache(request, redis_url):
    cache = Cache.connect(redis_url if request.param == "redis" else None, timeout_s=0.25)
    yield cache
    await cache.close()


async def test_json_round_trip_with_ttl_and_counts(cache):
    await cache.set_json("vitrine:test:a", {"x": [1, 2]}, ttl=30, kind="search")
    assert await cache.get_json("vitrine:test:a", kind="search") == {"x": [1, 2]}
    assert 0 < await cache.client.ttl("vitrine:test:a") <= 30
    assert await cache.get_many_json(["vitrine:test:a", "vitrine:test:none"], kind="product") == [{"x": [1, 2]}, None]


async def test_pattern_invalidation_scans(cache):
    for i in range(1200):
        await cache.client.set(f"vitrine:scan:{i}", b"1")
    await cache.client.set("vitrine:keep:1", b"1")
    assert await cache.delete_pattern("vitrine:scan:*") == 1200
    assert await cache.client.exists("vitrine:keep:1") == 1


async def test_concurrent_session_updates_lose_nothing(cache):
    store = CacheSessionStore(cache, model_tag=lambda: "m:test")
    user, now = int(time.time() * 1000) % 10_000_000, time.time()
    vectors = np.eye(8, dtype=np.float32)

    async def click(i: int) -> bool:  # as feedback does: the snapshot, then (the event stored) the update
        since = await store.snapshot(user)
        await asyncio.sleep(0)
        return await store.apply(user, InteractionType.CLICK, vectors[i % 8], weight=0.3, at=now, since=since)

    results = await asyncio.gather(*(click(i) for i in range(24)))
    assert all(results)
    raw = await cache.client.get(cache_keys.session_embedding(model="m:test", user_id=user))
    state = SessionState.loads(raw)
    assert state.parts[InteractionType.CLICK].weight == pytest.approx(24 * 0.3, rel=1e-3)
    assert await store.embedding(user, now=now) is not None
    assert await CacheUserVersions(cache).current(user) == 24  # each session write moved the version on with it


async def test_session_updates_from_two_workers_lose_nothing(redis_url):
    """Two API workers (each its own store and connections, so no shared lock): the compare-and-set retries."""
    caches = [Cache.connect(redis_url, timeout_s=2.0) for _ in range(2)]
    try:
        stores = [CacheSessionStore(cache, model_tag=lambda: "m:test") for cache in caches]
        user, now = int(time.time() * 1000) % 10_000_000 + 10_000_000, time.time()
        vectors = np.eye(8, dtype=np.float32)

        async def add_to_cart(i: int) -> bool:
            store = stores[i % 2]
            since = await store.snapshot(user)
            return await store.apply(user, InteractionType.ADD_TO_CART, vectors[i % 8], weight=0.5, at=now, since=since)

        results = await asyncio.gather(*(add_to_cart(i) for i in range(40)))
        assert all(results)
        state = SessionState.loads(
            await caches[0].client.get(cache_keys.session_embedding(model="m:test", user_id=user))
        )
        assert state.parts[InteractionType.ADD_TO_CART].weight == pytest.approx(40 * 0.5, rel=1e-3)
    finally:
        for cache in caches:
            await cache.close()


async def test_a_session_snapshot_reads_the_erase_generation_and_the_session_together(cache):
    store = CacheSessionStore(cache, model_tag=lambda: "m:test")
    user, now = int(time.time() * 1000) % 10_000_000 + 30_000_000, time.time()
    vector = np.eye(8, dtype=np.float32)[0]
    assert await store.snapshot(user) == SessionSnapshot(erase_generation=0, stored=None)
    assert await store.apply(user, InteractionType.LIKE, vector, weight=0.5, at=now, since=await store.snapshot(user))
    since = await store.snapshot(user)
    assert since.erase_generation == 0
    assert since.stored == await cache.client.get(cache_keys.session_embedding(model="m:test", user_id=user))

    await advance(cache.client, user)  # an erase after the snapshot: the update is dropped, version included
    version = await CacheUserVersions(cache).current(user)
    assert await store.apply(user, InteractionType.LIKE, vector, weight=0.5, at=now, since=since)
    assert await cache.client.get(cache_keys.session_embedding(model="m:test", user_id=user)) == since.stored
    assert await CacheUserVersions(cache).current(user) == version
    assert (await store.snapshot(user)).erase_generation == 1


async def test_a_session_snapshot_without_redis_knows_no_generation_and_writes_nothing():
    cache = Cache.connect("redis://127.0.0.1:1/0", timeout_s=0.5)  # nothing listens on port 1
    try:
        store = CacheSessionStore(cache, model_tag=lambda: "m:test")
        since = await store.snapshot(7)
        assert since == SessionSnapshot(erase_generation=None)
        assert not await store.apply(7, InteractionType.CLICK, np.ones(8, np.float32), weight=0.3, at=0.0, since=since)
    finally:
        await cache.close()


async def test_user_versions_bump(cache):
    versions = CacheUserVersions(cache)
    user = 424242
    start = await versions.current(user)
    await versions.bump(user, erase_generation=0)
    assert await versions.current(user) == start + 1


async def test_fenced_writes_run_only_while_the_erase_generation_is_unchanged(cache):
    user = int(time.time() * 1000) % 10_000_000 + 20_000_000
    keys = {"set": f"vitrine:test:fenced:{user}:set", "count": f"vitrine:test:fenced:{user}:count"}

    def writes(queued: FencedWrites) -> None:
        queued.set(keys["set"], b"\x00payload", ex=30)
        queued.incr(keys["count"])
        queued.zincrby(f"vitrine:test:fenced:{user}:z", 2.5, "member")

    assert await write_unless_erased(cache, user, 0, writes, op="test")  # never erased: generation 0
    assert await cache.client.get(keys["set"]) == b"\x00payload" and 0 < await cache.client.ttl(keys["set"]) <= 30
    assert await cache.client.zscore(f"vitrine:test:fenced:{user}:z", "member") == 2.5
    await advance(cache.client, user)  # an erase: writers holding generation 0 are fenced off
    assert not await write_unless_erased(cache, user, 0, writes, op="test")
    assert int(await cache.client.get(keys["count"])) == 1
    assert await write_unless_erased(cache, user, 1, writes, op="test")  # one that read the new generation
    assert int(await cache.client.get(keys["count"])) == 2
    assert not await write_unless_erased(cache, user, None, writes, op="test")  # generation unknown: nothing


async def test_a_read_modify_write_runs_only_while_what_it_read_is_still_there(cache):
    user = int(time.time() * 1000) % 10_000_000 + 30_000_000
    key, counter = f"vitrine:test:cas:{user}", f"vitrine:test:cas:{user}:count"

    def writes(value: bytes) -> FencedWrites:
        queued = FencedWrites()
        queued.set(key, value, ex=30)
        queued.incr(counter)
        return queued

    assert await write_if_unchanged(cache, user, 0, writes(b"\x00one"), read={key: None}) is Fenced.WRITTEN
    assert await write_if_unchanged(cache, user, 0, writes(b"lost"), read={key: None}) is Fenced.CHANGED
    assert await write_if_unchanged(cache, user, 0, writes(b"lost"), read={key: b"\x00on"}) is Fenced.CHANGED
    assert await write_if_unchanged(cache, user, 0, writes(b"two"), read={key: b"\x00one"}) is Fenced.WRITTEN
    assert await cache.client.get(key) == b"two" and int(await cache.client.get(counter)) == 2
    await advance(cache.client, user)
    assert await write_if_unchanged(cache, user, 0, writes(b"lost"), read={key: b"two"}) is Fenced.ERASED
    assert await cache.client.get(key) == b"two" and int(await cache.client.get(counter)) == 2


async def test_an_unreachable_redis_is_skipped_quickly_and_retried():
    cache = Cache.connect("redis://127.0.0.1:1/0", timeout_s=0.25)
    try:
        started = time.perf_counter()
        assert await cache.get_json("k", kind="search") is None  # a miss, not an error
        await cache.set_json("k", {"a": 1}, ttl=10, kind="search")  # a no-op
        assert not cache.available
        for _ in range(100):  # the breaker is open: no more waiting on the network
            assert await cache.get_json("k", kind="search") is None
        assert time.perf_counter() - started < 1.0
        assert cache.last_error
    finally:
        await cache.close()
