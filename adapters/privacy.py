"""Erasing a shopper (`DELETE /api/v1/users/{user_id}`, operator key): everything vitrine keeps about them.

    PostgreSQL   user_interactions (their events), user_profiles (their long-term taste vector)
    Redis        session vector, cached profile vector, cached recommendations, their entry in the
                 active-users stats and in the slow-query log

The cache is not optional here: an erase that could not reach Redis is a 503 (retry; erasing is idempotent),
not a success that left the session behind. The database goes first, so a retry after a partial failure finds
the rest. The answer counts what each place removed.

An erase is final for every write that read the shopper's data before it, in any worker: a profile recompute,
feedback, a recommendation in flight. The profile row is saved only while the events it came from exist
(SqlInteractionLog.save_profile). In Redis, the erase advances the user's erase generation before it deletes
anything, and per-user cache writes are dropped once it has moved (adapters/erasure.py). Cached
recommendations are keyed by the user's version, which a request reads before it reads the profile: the erase
moves the version on, so an answer computed before the erase and cached after it is never read. The version
then expires with the generation, instead of being deleted, which would start it again from 0 and bring old
versions back.

Left behind for a day: the erase generation and the version counter, two numbers under the shopper's id. The
search's learned table (adapters/learned_ranking.py) holds no user ids, only per-query sums; it is recomputed from
the stored events, so the shopper's searches stop counting at its next refresh (each API worker, within
SEARCH_LEARNING_REFRESH_S), and pages cached before it expire with their TTL.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import erasure
from adapters.cache import Cache
from adapters.db.tables import user_interactions, user_profiles
from adapters.observability import SLOW_LOG_KEY
from domain import cache_keys
from domain.errors import DependencyDown

SCAN_BATCH = 500
ERASE_CACHED_WITHIN_S = 5.0  # three scans of a round trip per SCAN_BATCH keys: only a Redis that hangs takes this


async def erase_user(engine: AsyncEngine, cache: Cache, user_id: int) -> dict[str, Any]:
    try:
        async with engine.begin() as conn:
            events, profiles = await erase_rows(conn, user_id)
    except (OperationalError, DBAPIError, OSError, ConnectionError) as exc:
        raise DependencyDown("database", str(exc).splitlines()[0]) from exc
    try:
        async with asyncio.timeout(ERASE_CACHED_WITHIN_S):  # the cache's client has no socket timeout of its own
            cached = await _erase_cached(cache, user_id)
    except (RedisError, OSError, TimeoutError) as exc:
        raise DependencyDown("cache", f"{type(exc).__name__}: {exc}; the database part is erased, retry") from exc
    return {
        "user_id": user_id,
        "erased": {"interactions": events, "profiles": profiles, **cached},
    }


async def erase_rows(conn: AsyncConnection, user_id: int) -> tuple[int, int]:
    """Delete the user's events, then their profile, in the caller's transaction: (events, profiles) deleted.
    In this order: a concurrent profile save locks the newest event it read (see save_profile)."""
    events = await conn.execute(sa.delete(user_interactions).where(user_interactions.c.user_id == user_id))
    profiles = await conn.execute(sa.delete(user_profiles).where(user_profiles.c.user_id == user_id))
    return events.rowcount, profiles.rowcount


async def _erase_cached(cache: Cache, user_id: int) -> dict[str, int]:
    client = cache.client
    await erasure.advance(client, user_id)  # first: writes in flight drop from here on; the deletes below follow
    patterns = {
        "session_keys": f"{cache_keys.PREFIX}:session:*:{user_id}",
        "profile_keys": f"{cache_keys.PREFIX}:profile:*:{user_id}",
        "recommendation_keys": f"{cache_keys.PREFIX}:rec:*:{user_id}:*",
    }
    counts: dict[str, int] = {}
    for name, pattern in patterns.items():
        keys = [key async for key in client.scan_iter(match=pattern, count=SCAN_BATCH)]
        counts[name] = int(await client.unlink(*keys)) if keys else 0
    await _retire_version(client, user_id)  # after the deletes: a request that reads the new version finds none
    counts["activity_entries"] = int(await client.zrem(cache_keys.user_activity(), str(user_id)))
    slow = 0
    for raw in await client.lrange(SLOW_LOG_KEY, 0, -1):
        entry = raw.decode() if isinstance(raw, bytes) else raw
        if json.loads(entry).get("user_id") == user_id:
            slow += int(await client.lrem(SLOW_LOG_KEY, 0, entry))
    counts["slow_log_entries"] = slow
    return counts


async def _retire_version(client: Redis, user_id: int) -> None:
    """Move the user's version past every version a request in flight may still cache an answer under, and
    let it go with the erase generation (cached answers live minutes; see the module's docstring)."""
    key = cache_keys.user_version(user_id)
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, erasure.GENERATION_TTL_S)
        await pipe.execute()
