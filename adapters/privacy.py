"""Erasing a shopper (`DELETE /api/v1/users/{user_id}`, operator key): everything vitrine keeps about them.

    PostgreSQL   user_interactions (their events), user_profiles (their long-term taste vector)
    Redis        session vector, cached profile vector, cached recommendations, their version counter, their
                 entry in the active-users stats and in the slow-query log

The cache is not optional here: an erase that could not reach Redis is a 503 (retry; erasing is idempotent),
not a success that left the session behind. The database goes first, so a retry after a partial failure finds
the rest. The answer counts what each place removed.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.cache import Cache
from adapters.db.tables import user_interactions, user_profiles
from adapters.observability import SLOW_LOG_KEY
from domain import cache_keys
from domain.errors import DependencyDown

SCAN_BATCH = 500


async def erase_user(engine: AsyncEngine, cache: Cache, user_id: int) -> dict[str, Any]:
    try:
        async with engine.begin() as conn:
            events = await conn.execute(sa.delete(user_interactions).where(user_interactions.c.user_id == user_id))
            profiles = await conn.execute(sa.delete(user_profiles).where(user_profiles.c.user_id == user_id))
    except (OperationalError, DBAPIError, OSError, ConnectionError) as exc:
        raise DependencyDown("database", str(exc).splitlines()[0]) from exc
    try:
        cached = await _erase_cached(cache, user_id)
    except (RedisError, OSError, TimeoutError) as exc:
        raise DependencyDown("cache", f"{type(exc).__name__}: {exc}; the database part is erased, retry") from exc
    return {
        "user_id": user_id,
        "erased": {"interactions": events.rowcount, "profiles": profiles.rowcount, **cached},
    }


async def _erase_cached(cache: Cache, user_id: int) -> dict[str, int]:
    client = cache.client
    patterns = {
        "session_keys": f"{cache_keys.PREFIX}:session:*:{user_id}",
        "profile_keys": f"{cache_keys.PREFIX}:profile:*:{user_id}",
        "recommendation_keys": f"{cache_keys.PREFIX}:rec:*:{user_id}:*",
    }
    counts: dict[str, int] = {}
    for name, pattern in patterns.items():
        keys = [key async for key in client.scan_iter(match=pattern, count=SCAN_BATCH)]
        counts[name] = int(await client.unlink(*keys)) if keys else 0
    counts["version_keys"] = int(await client.unlink(cache_keys.user_version(user_id)))
    counts["activity_entries"] = int(await client.zrem(cache_keys.user_activity(), str(user_id)))
    slow = 0
    for raw in await client.lrange(SLOW_LOG_KEY, 0, -1):
        entry = raw.decode() if isinstance(raw, bytes) else raw
        if json.loads(entry).get("user_id") == user_id:
            slow += int(await client.lrem(SLOW_LOG_KEY, 0, entry))
    counts["slow_log_entries"] = slow
    return counts
