"""The search pipeline: query -> embedding -> filtered vector search -> live products, behind a result cache.

Written against the protocols in domain/ports.py; service.py wires it to the encoder and index runners, the
catalog database and Redis. Stage timings go to `observe(stage, seconds)`, which the service points at its
performance monitor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from domain import cache_keys
from domain.api_models import SearchRequest, SearchResponse
from domain.filters import SearchFilters
from domain.ports import Encoder, IndexHits, ProductLookup, ResultCache, Vector, VectorSearcher
from domain.ranking import RankedPage, ranked_page

NO_RESULTS = "No products match this search."


def _ignore(stage: str, seconds: float) -> None:
    return None


@dataclass
class SearchPipeline:
    encoder: Encoder
    index: VectorSearcher
    catalog: ProductLookup
    cache: ResultCache
    model_tag: Callable[[], str]
    index_version: Callable[[], str]
    cache_ttl: int = 300
    cache_enabled: bool = True
    observe: Callable[[str, float], None] = field(default=_ignore)

    def _key(self, request: SearchRequest, *, index_version: str) -> str:
        return cache_keys.search_results(
            model=self.model_tag(),
            index=index_version,
            mode="vector",
            query=request.query,
            filters=request.filters.cache_token() if request.filters else "",
            limit=request.limit,
            offset=request.offset,
        )

    async def search(self, request: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        if self.cache_enabled:
            cached = await self.cache.get_json(self._key(request, index_version=self.index_version()), kind="search")
            if cached is not None:
                response = SearchResponse.model_validate(cached)
                response.cached = True
                response.took_ms = _ms_since(started)
                return response

        t0 = time.perf_counter()
        vector = await self.encoder.encode_text(request.query)
        self.observe("encode_query", time.perf_counter() - t0)
        page = await self._page(vector, request.filters, limit=request.limit, offset=request.offset)
        response = SearchResponse(
            query=request.query,
            results=page.results,
            total=page.total,
            limit=request.limit,
            offset=request.offset,
            took_ms=_ms_since(started),
            cached=False,
            mode="vector",
            message=None if page.results else NO_RESULTS,
        )
        if self.cache_enabled:
            await self.cache.set_json(
                self._key(request, index_version=page.index_version),
                response.model_dump(mode="json"),
                ttl=self.cache_ttl,
                kind="search",
            )
        return response

    async def search_by_image(
        self, image: Any, *, filters: SearchFilters | None, limit: int, offset: int
    ) -> SearchResponse:
        """Products that look like `image`; not cached (uploads rarely repeat byte for byte)."""
        started = time.perf_counter()
        t0 = time.perf_counter()
        vector = await self.encoder.encode_image(image)
        self.observe("encode_image", time.perf_counter() - t0)
        page = await self._page(vector, filters, limit=limit, offset=offset)
        return SearchResponse(
            query="<image>",
            results=page.results,
            total=page.total,
            limit=limit,
            offset=offset,
            took_ms=_ms_since(started),
            cached=False,
            mode="vector",
            message=None if page.results else NO_RESULTS,
        )

    async def _page(self, vector: Vector, filters: SearchFilters | None, *, limit: int, offset: int) -> RankedPage:
        async def hits(k: int) -> IndexHits:
            t1 = time.perf_counter()
            found = await self.index.search(vector, k=k, filters=filters)
            self.observe("index_search", time.perf_counter() - t1)
            return found

        return await ranked_page(hits, self.catalog, offset=offset, limit=limit)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
