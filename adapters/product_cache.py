"""Product metadata for enrichment: a small in-process layer, then Redis, then one batched database query.

Only active products are cached, so a product deactivated in the catalog drops out of results as soon as its
cached copy expires: within `HOT_TTL_S` in-process and `API_CACHE_TTL_PRODUCT` in Redis. To make a catalog
change visible at once, `invalidate()` (behind `DELETE /cache?kind=product`) deletes the Redis copies and bumps a
generation counter; every worker checks that counter at most once a second and drops its in-process layer
when it moved, so all workers follow within about a second.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from adapters.cache import Cache
from domain import cache_keys

HOT_TTL_S = 30.0
HOT_CAPACITY = 4096
GENERATION_CHECK_S = 1.0
GENERATION_KEY = f"{cache_keys.PREFIX}:product-generation"

Row = Mapping[str, Any]


class HotProducts:
    """The hottest product rows of this process, least recently used first out."""

    def __init__(self, capacity: int = HOT_CAPACITY, ttl_s: float = HOT_TTL_S) -> None:
        self._rows: OrderedDict[int, tuple[float, Row]] = OrderedDict()
        self._capacity = capacity
        self._ttl_s = ttl_s

    def get(self, product_id: int) -> Row | None:
        entry = self._rows.get(product_id)
        if entry is None:
            return None
        stored_at, row = entry
        if time.monotonic() - stored_at > self._ttl_s:
            del self._rows[product_id]
            return None
        self._rows.move_to_end(product_id)
        return row

    def put(self, product_id: int, row: Row) -> None:
        self._rows[product_id] = (time.monotonic(), row)
        self._rows.move_to_end(product_id)
        while len(self._rows) > self._capacity:
            self._rows.popitem(last=False)

    def clear(self) -> None:
        self._rows.clear()


class CachedCatalog:
    """`ProductLookup` over the catalog database with two cache layers in front."""

    def __init__(
        self,
        fetch_from_db: Callable[[Sequence[int]], Awaitable[dict[int, dict[str, Any]]]],
        exists_in_db: Callable[[int], Awaitable[bool]],
        cache: Cache,
        *,
        ttl: int,
        observe: Callable[[str, float], None],
    ) -> None:
        self._fetch_from_db = fetch_from_db
        self._exists_in_db = exists_in_db
        self._cache = cache
        self._ttl = ttl
        self._observe = observe
        self.hot = HotProducts()
        self._generation = 0
        self._generation_checked_at = 0.0

    async def invalidate(self) -> int:
        """Forget every cached product row, in Redis and (within a second) in every worker's in-process layer."""
        deleted = await self._cache.delete_pattern(cache_keys.pattern("product"))
        self._generation = await self._cache.incr(GENERATION_KEY) or self._generation
        self.hot.clear()
        return deleted

    async def _follow_generation(self) -> None:
        now = time.monotonic()
        if now - self._generation_checked_at < GENERATION_CHECK_S:
            return
        self._generation_checked_at = now
        generation = await self._cache.get_int(GENERATION_KEY)
        if generation != self._generation:
            self._generation = generation
            self.hot.clear()

    async def fetch(self, ids: Sequence[int]) -> dict[int, Row]:
        started = time.perf_counter()
        await self._follow_generation()
        found: dict[int, Row] = {}
        missing: list[int] = []
        for pid in dict.fromkeys(ids):
            row = self.hot.get(pid)
            if row is None:
                missing.append(pid)
            else:
                found[pid] = row

        if missing:
            cached = await self._cache.get_many_json([cache_keys.product(pid) for pid in missing], kind="product")
            still_missing = []
            for pid, row in zip(missing, cached, strict=True):
                if row is None:
                    still_missing.append(pid)
                else:
                    found[pid] = row
                    self.hot.put(pid, row)
            if still_missing:
                rows = await self._fetch_from_db(still_missing)
                for pid, row in rows.items():
                    found[pid] = row
                    self.hot.put(pid, row)
                self._cache.write_behind(
                    self._cache.set_many_json(
                        {cache_keys.product(pid): row for pid, row in rows.items()}, ttl=self._ttl
                    )
                )
        self._observe("enrich", time.perf_counter() - started)
        return found

    async def exists(self, product_id: int) -> bool:
        """Known to the catalog, active or not (feedback on a product withdrawn since is still feedback)."""
        if product_id in await self.fetch([product_id]):
            return True
        return await self._exists_in_db(product_id)
