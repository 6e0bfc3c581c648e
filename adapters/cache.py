"""The cache in front of everything: Redis in production, an in-process Redis on the embedded default.

The embedded default uses fakeredis, an in-process implementation of the Redis command set, rather than a
hand-written dict: the same commands (MGET, WATCH/MULTI, SCAN, sorted sets, TTLs) behave the same way in both
modes, so there is one code path to test.

Redis must never take a request down with it. Every operation has a short timeout; a failure opens a breaker
for `RETRY_AFTER_S`, during which the cache is skipped (a miss, a no-op write) without waiting on the network;
after that the next operation tries again, so the cache comes back by itself once Redis does. A timeout opens
it only when no other operation came back within the timeout either: one slow reply on a busy machine costs that
request its cache lookup, not every request for a second.

The timeout measures Redis, not the worker's event loop. When a wave of requests arrives at once the loop runs
their work back to back, and a reply that came back in a millisecond can sit unread in the socket for longer
than the timeout; a plain `asyncio.timeout` (or redis-py's socket timeout) then cancels an operation that had
already succeeded, and the breaker skips the cache for a second, adding uncached work to the pile. So the
deadline is a timer that, when it fires, first asks how late the loop ran it: a deadline the loop itself overran
is extended by the overrun (up to `MAX_WAIT_S` in all, so a Redis that is really gone still costs at most that).
Hits, misses and round-trip times are recorded per kind in the shared Prometheus metrics.

Writes that no answer depends on (a result, a query's vector or a product row kept for the next request) go
*behind* the answer (`write_behind`): the request does not wait for Redis to confirm them. Every await on a
request's path is a turn of the event loop, and in a wave of requests a turn is the whole backlog's length, so
an uncached search waited out two such confirmations (its query vector's and its result's) for nothing. Their
keys name the versions they were computed from (model, index, user), so a write that lands late is never
wrong, only unused; at most `MAX_WRITES_BEHIND` wait at once, past that a write is dropped, as when Redis is
down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from adapters.metrics import CACHE_ERRORS, CACHE_LOOKUPS, CACHE_OP_SECONDS
from domain.ports import Answer

log = logging.getLogger("vitrine.cache")
T = TypeVar("T")

RETRY_AFTER_S = 1.0
MAX_WAIT_S = 2.0  # a cache operation never holds a request longer, however late the loop runs
LATE_S = 0.005  # the loop woke the deadline this much late or more: it was busy, not Redis slow
MAX_WRITES_BEHIND = 1_000  # each lasts at most MAX_WAIT_S: ~20 s of the shop's writes on a Redis that hangs


async def within(timeout_s: float, call: Callable[[], Awaitable[T]]) -> T:
    """`await call()`, or TimeoutError once it has had `timeout_s` of the event loop's attention.

    The call runs in the caller's task, under an `asyncio.timeout` that a timer of ours expires: a task and an
    `asyncio.wait` per operation cost more CPU than the Redis command they guarded."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    timer: asyncio.TimerHandle

    def at_deadline(deadline: float) -> None:
        nonlocal timer
        now = loop.time()
        overrun = now - deadline
        if overrun < LATE_S or now - started >= MAX_WAIT_S:
            timeout.reschedule(now)  # Redis had its time: the call is cancelled and the block raises TimeoutError
        else:  # the loop itself came late: give the reply as long again as the loop kept it waiting
            later = min(now + overrun, started + MAX_WAIT_S)
            timer = loop.call_at(later, at_deadline, later)

    timer = loop.call_at(started + timeout_s, at_deadline, started + timeout_s)
    try:
        async with asyncio.timeout(None) as timeout:
            return await call()
    except TimeoutError:
        if timeout.expired():
            raise TimeoutError(f"no answer within {timeout_s:g}s") from None
        raise
    finally:
        timer.cancel()


def reconnect_once() -> dict[str, Any]:
    """redis-py client options, for every Redis client vitrine makes: a pooled connection that Redis closed (a
    restart, an idle timeout) fails its next command with ConnectionError, which is then tried once more on a new
    connection. Commands under WATCH are not retried (redis-py raises instead), so a transaction never runs twice."""
    return {"retry": Retry(NoBackoff(), retries=1), "retry_on_error": [RedisConnectionError]}


class Cache:
    def __init__(self, client: Redis, *, backend: str, timeout_s: float = 0.25, enabled: bool = True) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.backend = backend  # "redis" or "in-process"
        self.enabled = enabled
        self._down_until = 0.0
        self._last_answer = time.monotonic()  # the last time any operation came back
        self.last_error: str | None = None
        self._scripts: dict[str, Any] = {}
        self._behind: set[asyncio.Task[None]] = set()  # held here: the loop keeps only weak references to tasks
        self.writes_dropped = 0

    @classmethod
    def connect(cls, redis_url: str | None, *, timeout_s: float, enabled: bool = True) -> Cache:
        if redis_url is None:
            import fakeredis

            return cls(fakeredis.FakeAsyncRedis(), backend="in-process", timeout_s=timeout_s, enabled=enabled)
        client = Redis.from_url(
            redis_url,
            # None: `within` bounds each operation (see above), and the few outside it (probes, an erasure) are
            # bounded by their callers. With a socket timeout redis-py sends every command through
            # `asyncio.wait_for`, which on Python 3.11 is a task of its own: CPU, and a turn of the event loop
            # before the command even leaves, per command.
            socket_timeout=None,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
            health_check_interval=0,
            **reconnect_once(),  # not a breaker opened for everyone after a Redis restart
        )
        return cls(client, backend="redis", timeout_s=timeout_s, enabled=enabled)

    async def close(self) -> None:
        if self._behind:  # let the last writes land: the next worker's first requests find them
            await asyncio.wait(self._behind, timeout=MAX_WAIT_S)
        await self.client.aclose()

    def script(self, source: str) -> Any:
        """A Lua script on this cache's Redis, made once: each call is an EVALSHA (loading it if Redis lacks it)."""
        found = self._scripts.get(source)
        if found is None:
            found = self._scripts[source] = self.client.register_script(source)
        return found

    # --- availability -------------------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def guarded(self, op: str, call: Callable[[], Awaitable[T]], default: T) -> T:
        """Run one cache operation; on any Redis failure open the breaker and return `default`."""
        if not self.enabled or not self.available:
            return default
        started = time.perf_counter()
        try:
            result = await within(self.timeout_s, call)
        except TimeoutError as exc:
            CACHE_ERRORS.labels(op=op).inc()
            if time.monotonic() - self._last_answer < self.timeout_s:  # Redis answers others: slow, not gone
                log.warning("cache %s missed its %gs timeout while Redis answers others; skipped", op, self.timeout_s)
                return default
            self._open(op, exc)
            return default
        except (RedisError, OSError) as exc:
            CACHE_ERRORS.labels(op=op).inc()
            self._open(op, exc)
            return default
        self._last_answer = time.monotonic()
        CACHE_OP_SECONDS.labels(op=op).observe(time.perf_counter() - started)
        return result

    def _open(self, op: str, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_AFTER_S
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("cache %s failed, skipping the cache for %.1fs: %s", op, RETRY_AFTER_S, self.last_error)

    async def ping(self) -> float:
        """Round-trip time in ms; raises when the cache cannot be reached (used by /status and /ready)."""
        started = time.perf_counter()
        await self.client.ping()
        self._down_until = 0.0
        return round((time.perf_counter() - started) * 1000, 2)

    # --- writes behind the answer -------------------------------------------------------------------------
    def write_behind(self, write: Coroutine[Any, Any, None]) -> None:
        """Run a cache write (this cache's own, guarded) without waiting for it; see the module's docstring."""
        if not self.enabled or not self.available:
            write.close()  # never started: nothing to clean up
            return
        if len(self._behind) >= MAX_WRITES_BEHIND:  # Redis is slow, not down: the breaker has not opened
            write.close()
            self.writes_dropped += 1
            CACHE_ERRORS.labels(op="write_behind_full").inc()
            return
        task = asyncio.create_task(write)
        self._behind.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._behind.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:  # Redis failures are guarded already
            log.error("a cache write behind the answer failed: %r", exc)

    async def writes_landed(self) -> None:
        """Wait until no write behind an answer is pending (tests read what a request left in the cache)."""
        while self._behind:
            await asyncio.wait(set(self._behind))

    # --- JSON values --------------------------------------------------------------------------------------
    async def get_json(self, key: str, *, kind: str) -> Any | None:
        raw = await self.get_bytes(key, kind=kind)
        return None if raw is None else json.loads(raw)

    async def set_json(self, key: str, value: Any, *, ttl: int, kind: str) -> None:
        payload = json.dumps(value, separators=(",", ":"))
        await self.guarded("set", lambda: self.client.set(key, payload, ex=ttl), None)

    # --- whole answers (ResultCache protocol) --------------------------------------------------------------
    async def get_model(self, key: str, model: type[Answer], *, kind: str) -> Answer | None:
        raw = await self.get_bytes(key, kind=kind)
        if raw is None:
            return None
        try:
            return model.model_validate_json(raw)
        except ValidationError:  # kept by a release whose answer had another shape: a miss, then replaced
            return None

    def keep_model(self, key: str, value: BaseModel, *, ttl: int, kind: str) -> None:
        """Behind the answer; serialised now, by pydantic in one step (not `model_dump` and then `json.dumps`:
        that pair cost an API worker ~6% of its CPU in a wave)."""
        self.write_behind(self.set_bytes(key, value.model_dump_json().encode(), ttl=ttl))

    async def get_many_json(self, keys: Sequence[str], *, kind: str) -> list[Any | None]:
        if not keys:
            return []
        missing: list[bytes | str | None] = [None] * len(keys)
        raws = await self.guarded("mget", lambda: self.client.mget(list(keys)), missing)
        hits = sum(raw is not None for raw in raws)
        CACHE_LOOKUPS.labels(kind=kind, result="hit").inc(hits)
        CACHE_LOOKUPS.labels(kind=kind, result="miss").inc(len(keys) - hits)
        return [None if raw is None else json.loads(raw) for raw in raws]

    async def set_many_json(self, items: dict[str, Any], *, ttl: int) -> None:
        if not items:
            return

        async def write() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, json.dumps(value, separators=(",", ":")), ex=ttl)
                await pipe.execute()

        await self.guarded("mset", write, None)

    # --- raw bytes (embeddings) ---------------------------------------------------------------------------
    async def get_bytes(self, key: str, *, kind: str) -> bytes | None:
        raw = await self.guarded("get", lambda: self.client.get(key), None)
        CACHE_LOOKUPS.labels(kind=kind, result="miss" if raw is None else "hit").inc()
        return raw.encode() if isinstance(raw, str) else raw  # bytes: the client does not decode responses

    async def set_bytes(self, key: str, value: bytes, *, ttl: int) -> None:
        await self.guarded("set", lambda: self.client.set(key, value, ex=ttl), None)

    # --- counters and invalidation ------------------------------------------------------------------------
    async def get_int(self, key: str) -> int:
        raw = await self.guarded("get", lambda: self.client.get(key), None)
        return int(raw) if raw is not None else 0

    async def incr(self, key: str) -> int | None:
        return await self.guarded("incr", lambda: self.client.incr(key), None)

    async def delete(self, *keys: str) -> None:
        if keys:
            await self.guarded("delete", lambda: self.client.delete(*keys), None)

    async def delete_pattern(self, pattern: str, *, batch: int = 500) -> int:
        """Delete every key matching `pattern`, walking the keyspace with SCAN (never KEYS, which blocks Redis)."""

        async def scan_and_delete() -> int:
            deleted = 0
            chunk: list[bytes] = []
            async for key in self.client.scan_iter(match=pattern, count=batch):
                chunk.append(key)
                if len(chunk) >= batch:
                    deleted += await self.client.unlink(*chunk)
                    chunk = []
            if chunk:
                deleted += await self.client.unlink(*chunk)
            return deleted

        return await self.guarded("delete_pattern", scan_and_delete, 0)

    # --- frequency tracking -------------------------------------------------------------------------------
    async def bump_scores(self, key: str, amounts: Mapping[str, float]) -> None:
        """ZINCRBY of each member, in one pipeline (one round trip; not a transaction: each stands alone)."""

        async def send() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for member, amount in amounts.items():
                    pipe.zincrby(key, amount, member)
                await pipe.execute()

        await self.guarded("zincrby", send, None)

    async def top(self, key: str, *, limit: int, min_score: float = 0.0) -> list[tuple[str, float]]:
        async def query() -> list[tuple[bytes | str, float]]:
            # With scores, each row is (member, score); redis-py's return type covers every form of the reply.
            reply = await self.client.zrevrangebyscore(key, "+inf", min_score, start=0, num=limit, withscores=True)
            return [(member, float(score)) for member, score in cast("list[tuple[bytes | str, float]]", reply)]

        nothing: list[tuple[bytes | str, float]] = []
        rows = await self.guarded("zrange", query, nothing)
        return [(member.decode() if isinstance(member, bytes) else str(member), float(score)) for member, score in rows]
