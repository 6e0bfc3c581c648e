"""Cache warming: the most popular queries and the most active users, at start and then periodically.

Only one API worker warms per period (a short lock in the cache), so two workers do not do the work twice.
Warming a query runs it through the ordinary search pipeline (filling the query-embedding and result
caches); warming a user loads their long-term profile and their feed. Each one waits for the worker to be
between requests (`until_quiet`, adapters/in_flight.py): warming answers nobody, and 150 searches and feeds
run in the middle of live traffic would take turns on the event loop with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from adapters.cache import Cache
from domain import cache_keys
from domain.api_models import RecommendRequest, SearchRequest
from domain.errors import VitrineError
from domain.recommend import RecommendPipeline
from domain.search import SearchPipeline

log = logging.getLogger("vitrine.warming")

TOP_QUERIES = 50
TOP_USERS = 100
WARM_INTERVAL_S = 600.0
LOCK_KEY = f"{cache_keys.PREFIX}:warm:lock"


async def warm_once(
    cache: Cache,
    search: SearchPipeline,
    recommend: RecommendPipeline,
    *,
    until_quiet: Callable[[], Awaitable[None]],
) -> tuple[int, int]:
    """(queries warmed, users warmed); (0, 0) when another worker holds the lock."""
    got_lock = await cache.guarded(
        "warm_lock", lambda: cache.client.set(LOCK_KEY, b"1", nx=True, ex=int(WARM_INTERVAL_S * 0.9)), None
    )
    if not got_lock:
        return 0, 0
    queries = await cache.top(cache_keys.query_counts(), limit=TOP_QUERIES, min_score=1)
    users = await cache.top(cache_keys.user_activity(), limit=TOP_USERS, min_score=1)
    warmed_queries = warmed_users = 0
    for query, _ in queries:
        await until_quiet()
        try:
            await search.search(SearchRequest(query=query))
            warmed_queries += 1
        except (VitrineError, ValueError) as exc:
            log.info("could not warm query %r: %s", query, exc)
    for user, _ in users:
        await until_quiet()
        try:
            await recommend.recommend(RecommendRequest(user_id=int(user)))
            warmed_users += 1
        except (VitrineError, ValueError) as exc:
            log.info("could not warm user %s: %s", user, exc)
    log.info("cache warmed: %d queries, %d users", warmed_queries, warmed_users)
    return warmed_queries, warmed_users


async def warm_forever(
    cache: Cache,
    search: SearchPipeline,
    recommend: RecommendPipeline,
    *,
    until_quiet: Callable[[], Awaitable[None]],
) -> None:
    while True:
        try:
            await warm_once(cache, search, recommend, until_quiet=until_quiet)
        except Exception:
            log.exception("cache warming failed; trying again next period")
        await asyncio.sleep(WARM_INTERVAL_S)
