"""Searches counted per query, for the popular-query stats (/cache/stats) and cache warming (adapters/warming.py).

Counted in the worker and sent to Redis once a second, as one pipeline of ZINCRBYs for the queries searched
meanwhile, rather than one ZINCRBY (a task and a round trip) per search: a cached search made two Redis calls,
this was one of them, and on this machine a call's socket write alone was ~10% of the API worker's CPU per
cached search (py-spy). Counting stays best effort, as it was: a flush that fails (Redis down) loses that
second's counts, and a worker that stops sends what it holds once more on the way out.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from adapters.cache import Cache
from domain import cache_keys

FLUSH_INTERVAL_S = 1.0


class QueryCounts:
    def __init__(self, cache: Cache, *, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self._cache = cache
        self._interval_s = interval_s
        self._pending: Counter[str] = Counter()

    def count(self, query: str) -> None:
        """One search for `query` (normalised, so case and spacing do not split a query's count)."""
        self._pending[cache_keys.normalise_query(query)] += 1

    async def flush(self) -> None:
        """Send the counts held so far in one pipeline."""
        if self._pending:
            pending, self._pending = self._pending, Counter()
            await self._cache.bump_scores(cache_keys.query_counts(), pending)

    async def run(self) -> None:
        """Flush every interval until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s)
            await self.flush()
