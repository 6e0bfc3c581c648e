"""Erase generations: a privacy erase is final for every cache write that read the shopper's data before it.

What vitrine caches per user is derived from data read a moment earlier: the session from a feedback event
just stored, the cached profile from the interactions (or the profile row) just read, the activity count from
an event. If the shopper is erased in between, such a write would put erased data back after the erase had
cleaned up. An in-process lock cannot prevent it: there are two API workers, and profiles are recomputed in the
background.

So each user has an erase generation in Redis (`vitrine:erased:{user_id}`). The erase advances it after its
database part has committed, and deletes the cached keys after that (adapters/privacy.py). A writer reads the
generation before it reads or stores the data its write derives from, and writes under WATCH/MULTI only while
the generation is unchanged. Either its write lands before the advance, and the erase's cleanup removes it;
or after, and it is dropped. A writer that starts after the erase reads the new generation and writes
normally: feedback after an erase is a new history. (A writer that read the old generation just before the
erase but stored its event just after it is dropped too; the event itself is kept, and the next profile
recompute uses it.)

A generation that cannot be read (Redis unreachable) is None, and a writer holding None writes nothing: had it
written, nothing would tell an erase's cleanup, already past, to come back for it.

The generation expires `GENERATION_TTL_S` after the erase: far longer than any write in flight can take (a
request's deadline, a profile recompute), and the shopper's id does not stay in Redis for good. The profile
row in PostgreSQL is fenced in the database itself (SqlInteractionLog.save_profile).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from adapters.cache import Cache
from domain import cache_keys

GENERATION_TTL_S = 24 * 3600


def _generation(raw: bytes | str | None) -> int:
    return 0 if raw is None else int(raw)


class EraseGenerations:
    """The `EraseGenerations` port: read a user's erase generation before reading their data."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def current(self, user_id: int) -> int | None:
        async def read() -> int | None:
            return _generation(await self._cache.client.get(cache_keys.erase_generation(user_id)))

        return await self._cache.guarded("erase_generation", read, None)


async def advance(client: Redis, user_id: int) -> None:
    """The erase's move, after its database part and before it deletes cached keys. Raises when Redis does not
    answer: an erase that could not fence off the writes in flight is not done."""
    key = cache_keys.erase_generation(user_id)
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, GENERATION_TTL_S)
        await pipe.execute()


async def watch_unerased(pipe: Pipeline, user_id: int, generation: int, *keys: str) -> list[Any] | None:
    """WATCH the user's erase generation and `keys`, and read them: the keys' values, or None when the user
    has been erased since `generation`. Then `pipe.multi()`, queue the writes and `execute()`: it raises
    WatchError if any of them changed meanwhile."""
    fence = cache_keys.erase_generation(user_id)
    await pipe.watch(fence, *keys)
    current, *values = await pipe.mget([fence, *keys])
    return None if _generation(current) != generation else values


async def write_unless_erased(
    cache: Cache, user_id: int, generation: int | None, writes: Callable[[Pipeline], object], *, op: str
) -> bool:
    """Queue `writes` in one MULTI/EXEC that runs only if the user has not been erased since `generation`.
    False when it did not run: erased meanwhile, generation unknown, or the cache unreachable."""
    if generation is None:
        return False

    async def transaction() -> bool:
        async with cache.client.pipeline(transaction=True) as pipe:
            try:
                if await watch_unerased(pipe, user_id, generation) is None:
                    return False
                pipe.multi()
                writes(pipe)
                await pipe.execute()
                return True
            except WatchError:
                return False  # only the generation is watched: an erase advanced it just now

    return await cache.guarded(op, transaction, False)
