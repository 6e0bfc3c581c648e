"""A cache timeout measures Redis, not the worker's event loop (adapters/cache.py `within`).

A wave of requests keeps the loop busy with their CPU work; a Redis reply that arrived in a millisecond then
waits in the socket. Here the loop is blocked on purpose (a callback that sleeps) past the timeout while a
real Redis answers: the operation must succeed and the breaker stay closed. A Redis that does not answer
(a server paused with CLIENT PAUSE) must still time out, in about the timeout, and open the breaker; one slow
reply while Redis answers other operations must not.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from adapters import privacy
from adapters.cache import Cache, within
from adapters.db.engine import create_engine
from domain.errors import DependencyDown
from domain.settings import Settings

pytestmark = pytest.mark.integration


def block_the_loop(seconds: float) -> None:
    asyncio.get_running_loop().call_soon(time.sleep, seconds)  # as a burst's CPU work would


async def test_a_reply_read_late_because_the_loop_was_busy_is_not_a_timeout(redis_url):
    cache = Cache.connect(redis_url, timeout_s=0.05)
    try:
        await cache.set_json("vitrine:test:late", {"ok": True}, ttl=30, kind="search")
        block_the_loop(0.3)  # six times the timeout
        assert await cache.get_json("vitrine:test:late", kind="search") == {"ok": True}
        assert cache.available and cache.last_error is None
    finally:
        await cache.close()


async def test_a_redis_that_does_not_answer_still_times_out(redis_url):
    admin = redis.Redis.from_url(redis_url)
    cache = Cache.connect(redis_url, timeout_s=0.1)
    try:
        await cache.ping()  # connected before the pause
        admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        started = time.perf_counter()
        assert await cache.get_json("vitrine:test:paused", kind="search") is None
        waited = time.perf_counter() - started
        assert 0.09 <= waited < 0.5, waited
        assert not cache.available and "TimeoutError" in (cache.last_error or "")
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
        await cache.close()


async def test_an_erase_on_a_redis_that_does_not_answer_is_refused_in_its_bound(
    redis_url, postgres_url, tmp_path, monkeypatch
):
    """An erase talks to Redis outside `within` (scans, unlinks); the cache's client has no socket timeout, so its
    own bound is what answers the operator: 503, retry, not a request that hangs."""
    monkeypatch.setattr(privacy, "ERASE_CACHED_WITHIN_S", 0.3)
    admin = redis.Redis.from_url(redis_url)
    engine = create_engine(Settings(DATABASE_URL=postgres_url, VITRINE_DATA_DIR=tmp_path))
    cache = Cache.connect(redis_url, timeout_s=0.1)
    try:
        await cache.ping()
        admin.execute_command("CLIENT", "PAUSE", "2000", "ALL")
        started = time.perf_counter()
        with pytest.raises(DependencyDown) as refused:
            await privacy.erase_user(engine, cache, user_id=987_654_321)
        assert time.perf_counter() - started < 1.0
        assert refused.value.dependency == "cache"
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
        await cache.close()
        await engine.dispose()


async def test_one_slow_reply_while_redis_answers_others_skips_that_lookup_only(redis_url):
    cache = Cache.connect(redis_url, timeout_s=0.1)
    try:
        await cache.set_json("vitrine:test:answered", {"ok": True}, ttl=30, kind="search")

        async def answered_meanwhile() -> None:
            for _ in range(12):
                assert await cache.get_json("vitrine:test:answered", kind="search") == {"ok": True}
                await asyncio.sleep(0.02)

        # BLPOP on an empty list holds its own connection: a reply that does not come, on a Redis that is up.
        slow, _ = await asyncio.gather(
            cache.guarded("get", lambda: cache.client.blpop(["vitrine:test:empty"], timeout=1), "skipped"),
            answered_meanwhile(),
        )
        assert slow == "skipped"
        assert cache.available and cache.last_error is None  # the breaker stayed closed
        assert await cache.get_json("vitrine:test:answered", kind="search") == {"ok": True}
    finally:
        await cache.close()


async def test_a_connection_redis_closed_is_replaced_without_opening_the_breaker(redis_url):
    """After a Redis restart every pooled connection is dead; each one's next command must not cost everyone the
    cache for a second. Here Redis closes the cache's connection (CLIENT KILL), as a restart would."""
    admin = redis.Redis.from_url(redis_url)
    cache = Cache.connect(redis_url, timeout_s=0.25)
    try:
        await cache.set_json("vitrine:test:kept", {"ok": True}, ttl=30, kind="search")
        connection_id = await cache.client.client_id()  # one connection in the pool: the one just used
        assert admin.execute_command("CLIENT", "KILL", "ID", connection_id) == 1
        assert await cache.get_json("vitrine:test:kept", kind="search") == {"ok": True}
        assert cache.available and cache.last_error is None
    finally:
        admin.close()
        await cache.close()


async def test_within_gives_up_after_the_cap_however_late_the_loop():
    never = asyncio.Event()
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await within(0.05, never.wait)
    assert time.perf_counter() - started < 0.2


async def test_within_leaves_a_cancel_from_outside_a_cancel():
    """The call runs in the caller's task: a request cancelled meanwhile (its deadline, a client gone) must see
    CancelledError, not a cache timeout."""
    never = asyncio.Event()
    waiting = asyncio.create_task(within(1.0, never.wait))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_within_passes_on_the_calls_own_timeout_error_and_an_answer_in_time():
    async def gives_up() -> None:
        raise TimeoutError("the call's own")

    with pytest.raises(TimeoutError, match="the call's own"):
        await within(1.0, gives_up)

    async def answers() -> str:
        await asyncio.sleep(0.01)
        return "answer"

    assert await within(0.5, answers) == "answer"
