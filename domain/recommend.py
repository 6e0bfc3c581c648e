"""Recommendations: blend what we know of a shopper into one vector and search with it.

The components come from three places: the long-term profile (durable, recomputed after feedback), the live
session (updated on every event) and the request itself (a query to encode, or a product whose stored vector
is looked up). domain/blending.py mixes them per context. With nothing to blend, the shopper gets the
cold-start list: what is popular now, followed by the catalog's best products.

Products the user purchased are left out of feed and category results; viewed or clicked ones may return.
Answers are cached per user, context and parameters under the user's version counter, which feedback bumps.

The cold-start list (up to `COLD_START_POOL` products) is ranked at most once a minute per process, and which of
it each set of filters admits is worked out once per ranking (`ColdStartPool`): a stranger's request then costs a
slice and the rows of its page, not a thousand rows and filter checks. The filters see the rows as they were
when the list was ranked (as the index's filters see the rows as they were when it was built); the page shows
the rows as they are now, and a product withdrawn since is skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from domain import cache_keys
from domain.api_models import ProductResult, RecommendRequest, RecommendResponse
from domain.blending import RecommendContext, blend
from domain.errors import DependencyDown, NotFound
from domain.filters import SearchFilters
from domain.popularity import popular_products
from domain.ports import (
    IndexHits,
    InteractionLog,
    ProductLookup,
    ProductVectors,
    ProfileSource,
    QueryEncoder,
    ResultCache,
    SessionStore,
    UserVersions,
    Vector,
    VectorSearcher,
)
from domain.products import product_result
from domain.ranking import first_live, ranked_page

EXCLUDE_PURCHASED = {RecommendContext.FEED, RecommendContext.CATEGORY}
POPULARITY_WINDOW = timedelta(days=14)
POPULARITY_EVENTS = 20_000
POPULARITY_TTL_S = 60.0
COLD_START_POOL = 1000
MAX_FILTER_SETS = 256  # per cold-start pool


def with_category(filters: SearchFilters | None, category: str | None) -> SearchFilters | None:
    if category is None:
        return filters
    return (filters or SearchFilters()).model_copy(update={"categories": [category]})


def matches(row: Mapping[str, Any], filters: SearchFilters | None) -> bool:
    """The filters applied to a catalog row, for lists that do not come from the index (domain/filters.py)."""
    return filters is None or filters.admits(row)


@dataclass
class ColdStartPool:
    """The cold-start list as ranked at `ranked_at`: active products best first, their rows as they were then,
    and, per set of filters asked for since, the part of the list they admit."""

    ranked_at: float
    ranked: list[tuple[int, float]]
    rows: Mapping[int, Mapping[str, Any]]
    _admitted: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def admitted(self, filters: SearchFilters | None) -> list[tuple[int, float]]:
        key = "" if filters is None else filters.model_dump_json()
        found = self._admitted.get(key)
        if found is None:
            found = [(pid, score) for pid, score in self.ranked if matches(self.rows[pid], filters)]
            if len(self._admitted) < MAX_FILTER_SETS:  # a pool lives a minute; this bounds it against odd clients
                self._admitted[key] = found
        return found


@dataclass
class RecommendPipeline:
    encoder: QueryEncoder
    index: VectorSearcher
    vectors: ProductVectors
    catalog: ProductLookup
    profiles: ProfileSource
    sessions: SessionStore
    interactions: InteractionLog
    versions: UserVersions
    best_products: Callable[[int], Awaitable[list[int]]]
    cache: ResultCache
    model_tag: Callable[[], str]
    index_version: Callable[[], str]
    cache_ttl: int = 120
    cache_enabled: bool = True
    observe: Callable[[str, float], None] = field(default=lambda stage, seconds: None)
    _pool: ColdStartPool | None = None

    async def recommend(self, request: RecommendRequest) -> RecommendResponse:
        started = time.perf_counter()
        key = None
        if self.cache_enabled:
            key = cache_keys.recommendations(
                model=self.model_tag(),
                index=self.index_version(),
                user_id=request.user_id,
                user_version=await self.versions.current(request.user_id),
                params=request.model_dump_json(exclude={"user_id"}),
            )
            response = await self.cache.get_model(key, RecommendResponse, kind="recommend")
            if response is not None:
                response.cached = True
                response.took_ms = _ms_since(started)
                return response

        components = await self._components(request)
        if "query" in components and components["query"] is None:
            key = None  # answered without the encoder (down): not worth keeping once it is back
        mix = blend(request.context, components)
        exclude = await self.interactions.purchased(request.user_id) if request.context in EXCLUDE_PURCHASED else set()
        filters = with_category(request.filters, request.category)
        if request.context is RecommendContext.SIMILAR and request.product_id is not None:
            exclude = exclude | {request.product_id}  # "similar to X" should not answer X

        if mix.vector is not None:
            strategy = "personalized"
            results, total = await self._personalized(mix.vector, filters, request, exclude)
        else:
            strategy = "cold_start"
            results, total = await self._cold_start(filters, request, exclude)

        response = RecommendResponse(
            user_id=request.user_id,
            context=request.context,
            strategy=strategy,
            blend_weights=mix.weights,
            components=mix.components,
            results=results,
            total=total,
            limit=request.limit,
            offset=request.offset,
            took_ms=_ms_since(started),
            cached=False,
        )
        if key is not None:
            self.cache.keep_model(key, response, ttl=self.cache_ttl, kind="recommend")
        return response

    async def _components(self, request: RecommendRequest) -> dict[str, Vector | None]:
        context = request.context
        wanted: dict[str, Awaitable[Vector | None]] = {"long_term": self.profiles.long_term(request.user_id)}
        if context is RecommendContext.FEED:
            wanted["session"] = self.sessions.embedding(request.user_id, now=time.time())
        if context is RecommendContext.SEARCH and request.query is not None:
            wanted["query"] = self._query_vector(request.query)
        if context is RecommendContext.SIMILAR and request.product_id is not None:
            wanted["product"] = self._product_vector(request.product_id)
        t0 = time.perf_counter()
        values = await asyncio.gather(*wanted.values())
        self.observe("recommend_components", time.perf_counter() - t0)
        return dict(zip(wanted, values, strict=True))

    async def _query_vector(self, query: str) -> Vector | None:
        """The query's embedding; None while the encoder is down, so the blend goes on from the other parts."""
        try:
            return await self.encoder.encode_text(query)
        except DependencyDown as exc:
            if exc.dependency != "encoder":
                raise
            return None

    async def _product_vector(self, product_id: int) -> Vector:
        found = await self.vectors.vectors([product_id])
        if product_id not in found:
            raise NotFound(f"product {product_id} is not in the catalog index", field="product_id")
        return found[product_id]

    async def _personalized(
        self, vector: Vector, filters: SearchFilters | None, request: RecommendRequest, exclude: set[int]
    ) -> tuple[list[ProductResult], int]:
        async def hits(k: int) -> IndexHits:
            t0 = time.perf_counter()
            found = await self.index.search(vector, k=k, filters=filters)
            self.observe("index_search", time.perf_counter() - t0)
            return found

        page = await ranked_page(hits, self.catalog, offset=request.offset, limit=request.limit, exclude=exclude)
        return page.results, page.total

    async def _cold_start(
        self, filters: SearchFilters | None, request: RecommendRequest, exclude: set[int]
    ) -> tuple[list[ProductResult], int]:
        admitted = (await self._cold_start_pool()).admitted(filters)
        if exclude:
            admitted = [(pid, score) for pid, score in admitted if pid not in exclude]
        # the rows as they are now: a product withdrawn since the ranking is skipped, the next one shown
        rows, live = await first_live(admitted[request.offset :], self.catalog, request.limit)
        return [product_result(rows[pid], score=score) for pid, score in live], len(admitted)

    async def _cold_start_pool(self) -> ColdStartPool:
        """Popular products, then (too little traffic yet) the catalog's best to fill the pool; ranked at most
        once a minute per process: the two queries and the thousand rows behind it cost more than the rest of a
        cold start."""
        now = time.time()
        if self._pool is not None and now - self._pool.ranked_at < POPULARITY_TTL_S:
            return self._pool
        events = await self.interactions.recent_everyone(
            since=datetime.now(UTC) - POPULARITY_WINDOW, limit=POPULARITY_EVENTS
        )
        ranked = popular_products(events, now=now)[:COLD_START_POOL]
        if len(ranked) < COLD_START_POOL:
            seen = {pid for pid, _ in ranked}
            best = await self.best_products(COLD_START_POOL)
            ranked = ranked + [(pid, 0.0) for pid in best if pid not in seen]
        rows = await self.catalog.fetch([pid for pid, _ in ranked])
        self._pool = ColdStartPool(now, [(pid, score) for pid, score in ranked if pid in rows], rows)
        return self._pool


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
