"""Product vectors kept in the API process, so feedback and recommendations rarely call the index service.

Every feedback event needs its product's vector (the session moves towards it) and every profile recompute
the vectors of up to 500 products the user touched; a "similar" recommendation needs its product's. From the
index service each is an HTTP call carrying 512 floats a product as JSON, which under the shop's mix was one
of the larger costs of an API worker. Shoppers interact with what they were just shown, and the same
products are shown again and again, so a bounded LRU here answers most of them.

Entries belong to one index version: vectors change only when the index is rebuilt, so the cache empties
when the API sees a new version (IndexClient.version, which every search and the runner poll refresh).
Missing ids (not in the index) are not cached: the next index build may add them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from domain.ports import ProductVectors, Vector


class CachedProductVectors:
    """`ProductVectors` over another one, with an in-process LRU of at most `capacity` vectors."""

    def __init__(self, source: ProductVectors, *, index_version: Callable[[], str], capacity: int = 20_000) -> None:
        self._source = source
        self._index_version = index_version
        self._capacity = capacity
        self._version = index_version()
        self._vectors: OrderedDict[int, Vector] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def vectors(self, product_ids: list[int]) -> dict[int, Vector]:
        self._follow_index()
        found: dict[int, Vector] = {}
        missing: list[int] = []
        for product_id in product_ids:
            vector = self._vectors.get(product_id)
            if vector is None:
                missing.append(product_id)
            else:
                self._vectors.move_to_end(product_id)
                found[product_id] = vector
        self.hits += len(found)
        self.misses += len(missing)
        if missing:
            version = self._version
            fetched = await self._source.vectors(missing)
            found.update(fetched)
            self._follow_index()
            if self._version == version:  # not fetched from an index that has since been replaced
                for product_id, vector in fetched.items():
                    vector.setflags(write=False)  # shared between callers: nobody may change it in place
                    self._vectors[product_id] = vector
                while len(self._vectors) > self._capacity:
                    self._vectors.popitem(last=False)
        return found

    def _follow_index(self) -> None:
        version = self._index_version()
        if version != self._version:
            self._vectors.clear()
            self._version = version
