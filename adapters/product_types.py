"""The catalog's product types with prototype vectors (domain/product_types.py), built from the catalog itself.

The types are the active products' `category_name` values; each prototype is the mean of the stored index
vectors (the offline text model's embeddings of the products' names and descriptions, `vitrine index build`)
of the type's first `SAMPLE_PRODUCTS` products by id, so a rebuild is stable and no encoder time is spent:
one call to the index. Built in the background on first use; a search never waits for it: until it is done,
no type is guessed. Built again after `ttl_s`, serving the old ones meanwhile. When the database or the index
fails, searches go on without type guessing and a later one tries again after `retry_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.background_load import BackgroundLoad
from adapters.db.tables import products
from domain.ports import Vector
from domain.product_types import ProductTypes

log = logging.getLogger("vitrine.product_types")
MAX_TYPES = 300  # a catalog with more 'types' than this uses category_name for something else
SAMPLE_PRODUCTS = 30  # per type; MAX_TYPES * SAMPLE_PRODUCTS stays within one index call's limit (10k)
StoredVectors = Callable[[list[int]], Awaitable[dict[int, Vector]]]  # IndexClient.vectors


class CatalogProductTypes:
    """`ProductTypeSource` over the catalog database and the index's stored vectors."""

    def __init__(self, engine: AsyncEngine, vectors: StoredVectors, *, ttl_s: float = 1800.0, retry_s: float = 60.0):
        self._engine = engine
        self._vectors = vectors
        self._ttl_s = ttl_s
        self._retry_s = retry_s
        self._types: ProductTypes | None = None
        self._loaded_at = 0.0
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()
        self._loading = BackgroundLoad(self._load_quietly, name="vitrine-product-types")

    async def product_types(self) -> ProductTypes | None:
        """The prototypes, never waiting for them: None until the first build (which this starts) is done."""
        now = time.monotonic()
        due = self._types is None and (self._failed_at is None or now - self._failed_at >= self._retry_s)
        stale = self._types is not None and now - self._loaded_at > self._ttl_s
        if due or stale:
            self._loading.start()
        return self._types

    async def ready(self) -> ProductTypes | None:
        """The prototypes, built now if they never were (for tools and tests that guess from the first query)."""
        if self._types is None:
            await self._loading.wait()  # the build a search started
        if self._types is None:
            async with self._lock:
                if self._types is None:
                    await self._load_quietly()
        return self._types

    async def close(self) -> None:
        await self._loading.close()

    async def _load_quietly(self) -> None:
        try:
            self._types = await self.build()
            self._loaded_at = time.monotonic()
            self._failed_at = None
        except Exception as exc:  # search works without type guessing; try again later
            log.warning("product type prototypes not built: %s", exc)
            self._failed_at = time.monotonic()

    async def build(self) -> ProductTypes:
        ids = await self._sample_ids()
        types = sorted(ids)[:MAX_TYPES]
        stored = await self._vectors([pid for name in types for pid in ids[name]])
        members = [[stored[pid] for pid in ids[name] if pid in stored] for name in types]
        known = [(name, vectors) for name, vectors in zip(types, members, strict=True) if vectors]
        return ProductTypes.from_text_vectors([name for name, _ in known], [vectors for _, vectors in known])

    async def _sample_ids(self) -> dict[str, list[int]]:
        rank = sa.func.row_number().over(partition_by=products.c.category_name, order_by=products.c.id).label("rank")
        ranked = (
            sa.select(products.c.category_name, products.c.id, rank)
            .where(products.c.is_active, products.c.category_name.is_not(None))
            .subquery()
        )
        statement = sa.select(ranked.c.category_name, ranked.c.id).where(ranked.c.rank <= SAMPLE_PRODUCTS)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement.order_by(ranked.c.category_name, ranked.c.rank))).all()
        ids: dict[str, list[int]] = defaultdict(list)
        for row in rows:
            category = str(row.category_name).strip()
            if category:
                ids[category].append(int(row.id))
        return ids
