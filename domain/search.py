"""The search pipeline: query -> understood query -> keyword and/or vector retrieval -> live products, cached.

Three modes, chosen per request (`SearchRequest.mode`, the pipeline's `default_mode` when omitted):

    vector    the query's embedding, filtered FAISS search (the runners)
    keyword   full-text search in the catalog database (KeywordSearcher, adapters/db/keyword_search.py)
    hybrid    both legs at once, fused by a weighted sum of normalised scores (domain/fusion.py)

Every mode first reads the words (domain/query_understanding.py): a price stated in them becomes a filter
unless the request has its own, a misspelt word is corrected towards the catalog's vocabulary, and the
keyword leg gets plurals, catalog spellings and synonyms. All modes apply the same filters in the same way
and page the same way (domain/ranking.py); `total` is the number of products matching the filters.

A colour in the words (one the catalog has) ranks products of that colour first in the keyword and hybrid
modes, and is reported in `interpretation.applied_filters["colour"]`; products of other colours follow
rather than being dropped, and when none of the page has the colour, `message` says so. Measured on the
relevance benchmark, dropping them instead (falling back only when nothing of the colour matches) costs
0.11 NDCG@10 on colour queries: 'red dress' would show red t-shirts, since this catalog has no red dress.
The vector leg has no colour field to filter on; the words alone steer it.

What the words rule out ("not black", "without heels") ranks last in the keyword and hybrid modes (a colour is
reported in `applied_filters["excluded_colour"]`) and is never embedded. In hybrid mode, a query whose words
name no catalog type ('puffer', 'something to keep the sun off my head') also asks the keyword leg for the type
whose prototype is nearest its embedding (domain/product_types.py), reported in `applied_filters["product_type"]`;
such a query's keyword search waits for its encoding, every other one runs alongside it as before.

What shoppers chose after a query (domain/click_model.py: clicks, carts and purchases, position bias corrected)
raises those products in hybrid mode: a bounded boost added to the fused score, only for queries enough shoppers
acted on; a query whose words name no type, and whose shoppers mostly chose one, asks for that type at once
(before any guess from the encoder). The learned table lives in the process (`learned`, refreshed in the
background by adapters/learned_ranking.py): no database call per search. A learned query's cached pages are keyed
by its entry's version, so a refresh that moves its boosts is seen at once, not after the cache TTL; a query nothing
was learned for keeps the key, the ranking and the work it had. The keyword and vector modes show their leg as it
is, unboosted (their pages are not fetched at a fixed depth, so a re-ranking there could differ between pages).

When the encoder cannot answer (`DependencyDown` from it: down, reloading, past its deadline), a hybrid or
vector text search answers from the keyword leg instead of failing or waiting: `mode` is "keyword" and
`message` says why; such a page is not cached.

Written against the protocols in domain/ports.py and domain/lexical.py; service.py wires it to the encoder
and index runners, the catalog database and Redis. Stage timings go to `observe(stage, seconds)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from domain import cache_keys
from domain.api_models import ProductResult, QueryInterpretation, SearchMode, SearchRequest, SearchResponse
from domain.click_model import LearnedQuery, LearnedSource, rerank
from domain.colour_names import ColourLexicon
from domain.errors import DependencyDown, Unsupported
from domain.filters import SearchFilters
from domain.fusion import Ranked, linear_fusion, reciprocal_rank_fusion
from domain.lexical import EMPTY_VOCABULARY, KeywordHits, KeywordQuery, KeywordSearcher, Vocabulary
from domain.ports import Encoder, IndexHits, ProductLookup, ResultCache, Vector, VectorSearcher
from domain.product_types import ProductTypeSource, TypeGuessing
from domain.query_understanding import (
    UnderstoodQuery,
    Weights,
    merge_filters,
    names_a_type,
    type_words,
    understand,
    with_type,
)
from domain.ranking import BACKFILL_SLACK, RankedPage, ranked_page
from domain.shop_words import ShopWords

NO_RESULTS = "No products match this search."
ENCODER_DOWN = "The text model is unavailable right now: these results match the words of the search only."
HitsFetcher = Callable[[int], Awaitable[IndexHits]]  # k -> the best k hits (domain/ranking.py asks for more)


def _ignore(stage: str, seconds: float) -> None:
    return None


@dataclass(frozen=True)
class SearchTuning:
    """Fusion and query-reading knobs, tuned on the relevance benchmark (loadtests/relevance, dev split)."""

    fusion: Literal["linear", "rrf"] = "linear"
    keyword_weight: float = 1.0
    vector_weight: float = 0.35
    rrf_k: float = 60.0  # only for fusion="rrf"
    # Both legs are asked for at least this many hits, so a product's fused rank does not depend on the page
    # asked for (pages 1..5 of 20 come from one fused list and never overlap or skip).
    fusion_depth: int = 100
    understanding: Weights = field(default_factory=Weights)
    type_guessing: TypeGuessing = field(default_factory=TypeGuessing)
    # What shoppers chose adds up to this to the fused score (keyword match 0..1 + vector 0..0.35): the query's
    # favourite, once many shoppers back it, rises above every product that matches the words as well as it does
    # (their vector leg spreads them by 0.35 at most), and above those matching them somewhat better; never above
    # one matching them far better. Not tuned on the benchmark (it has no shoppers): on simulated click logs
    # (tests/integration/test_learning_from_clicks.py, 30 seeds) 0.5 left the second relevant product below the
    # top three in a third of them, 0.75 in one of thirty; 1.0 moved little more.
    learned_weight: float = 0.75


@dataclass
class SearchPipeline:
    encoder: Encoder
    index: VectorSearcher
    catalog: ProductLookup
    cache: ResultCache
    model_tag: Callable[[], str]
    index_version: Callable[[], str]
    keywords: KeywordSearcher | None = None  # None: vector search only
    colour_names: ColourLexicon | None = None  # shades ('crimson') -> catalog colours; None: catalog names only
    product_types: ProductTypeSource | None = None  # type prototypes (domain/product_types.py); None: no guessing
    learned: LearnedSource | None = None  # what shoppers chose after queries (domain/click_model.py); None: nothing
    dictionary: frozenset[str] = frozenset()  # words of the language, never taken for typos
    shop_words: ShopWords | None = None  # what words only a dictionary knows are kinds of; None: not read
    default_mode: SearchMode = "hybrid"
    tuning: SearchTuning = field(default_factory=SearchTuning)
    cache_ttl: int = 300
    cache_enabled: bool = True
    observe: Callable[[str, float], None] = field(default=_ignore)

    def mode_for(self, request: SearchRequest) -> SearchMode:
        if request.mode is not None:
            if request.mode != "vector" and self.keywords is None:
                raise Unsupported(f"mode {request.mode!r} needs keyword search, which is not set up", field="mode")
            return request.mode
        return self.default_mode if self.keywords is not None else "vector"

    def _key(
        self, request: SearchRequest, *, mode: SearchMode, index_version: str, learned: LearnedQuery | None
    ) -> str:
        return cache_keys.search_results(
            model=self.model_tag(),
            index=index_version,
            mode=mode,
            query=request.query,
            filters=request.filters.cache_token() if request.filters else "",
            limit=request.limit,
            offset=request.offset,
            learned=learned.version if learned is not None else "",
        )

    async def _learned_for(self, request: SearchRequest, mode: SearchMode) -> LearnedQuery | None:
        if self.learned is None or mode != "hybrid":
            return None
        return (await self.learned.learned_ranking()).for_query(cache_keys.normalise_query(request.query))

    async def search(self, request: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        mode = self.mode_for(request)
        learned = await self._learned_for(request, mode)
        if self.cache_enabled:
            key = self._key(request, mode=mode, index_version=self.index_version(), learned=learned)
            response = await self.cache.get_model(key, SearchResponse, kind="search")
            if response is not None:
                response.cached = True
                response.took_ms = _ms_since(started)
                return response

        t0 = time.perf_counter()
        understood = understand(
            request.query,
            await self._vocabulary(),
            weights=self.tuning.understanding,
            colour_names=self.colour_names,
            dictionary=self.dictionary,
            shop_words=self.shop_words,
        )
        filters, applied = merge_filters(request.filters, understood)
        self.observe("understand_query", time.perf_counter() - t0)

        degraded = False
        try:
            page, matched, guessed = await self._text_page(
                mode, understood, filters, limit=request.limit, offset=request.offset, learned=learned
            )
        except DependencyDown as exc:
            if exc.dependency != "encoder" or mode == "keyword" or self.keywords is None:
                raise
            # The encoder is down or reloading: the words alone still find products, at once.
            mode, degraded = "keyword", True
            page, matched, guessed = await self._text_page(
                mode, understood, filters, limit=request.limit, offset=request.offset, learned=None
            )
        if understood.colours and mode != "vector":
            applied = {**applied, "colour": list(understood.colours)}  # ranked first; see the module doc
        if understood.excluded_colours and mode != "vector":
            applied = {**applied, "excluded_colour": list(understood.excluded_colours)}  # ranked last
        if guessed is not None:
            applied = {**applied, "product_type": guessed}
        interpretation = None
        if understood.corrected is not None or applied:
            interpretation = QueryInterpretation(corrected_query=understood.corrected, applied_filters=applied)
        response = SearchResponse(
            query=request.query,
            results=page.results,
            total=page.total,
            limit=request.limit,
            offset=request.offset,
            took_ms=_ms_since(started),
            cached=False,
            mode=mode,
            interpretation=interpretation,
            message=ENCODER_DOWN
            if degraded
            else _message(page.results, understood, applied, mode=mode, matched=matched),
            index_version=page.index_version,
        )
        if self.cache_enabled and not degraded:  # a degraded page is not kept once the encoder is back
            self.cache.keep_model(
                self._key(request, mode=mode, index_version=page.index_version, learned=learned),
                response,
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
        page = await ranked_page(self._index_hits(vector, filters), self.catalog, offset=offset, limit=limit)
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
            index_version=page.index_version,
        )

    # --- retrieval ----------------------------------------------------------------------------------------

    async def _vocabulary(self) -> Vocabulary:
        return EMPTY_VOCABULARY if self.keywords is None else await self.keywords.vocabulary()

    async def _text_page(
        self,
        mode: SearchMode,
        understood: UnderstoodQuery,
        filters: SearchFilters | None,
        *,
        limit: int,
        offset: int,
        learned: LearnedQuery | None,
    ) -> tuple[RankedPage, int | None, str | None]:
        """The page, how many products the words matched (None when the keyword leg was not asked), and the
        product type learned from shoppers or guessed from the words' meaning (hybrid only, when the words name
        none)."""
        if mode == "keyword":
            fetch = self._keyword_only(understood.keyword, filters)
            page = await ranked_page(fetch, self.catalog, offset=offset, limit=limit)
            return page, page.total, None
        if mode == "vector":
            vector = await self._encode(understood.text)
            page = await ranked_page(self._index_hits(vector, filters), self.catalog, offset=offset, limit=limit)
            return page, None, None
        # Hybrid: the keyword leg needs no vector, so it runs while the query is encoded; the first page of hits
        # then waits only for whichever of (encode + index search) and (keyword search) takes longer.
        depth = max(self.tuning.fusion_depth, offset + limit + BACKFILL_SLACK)
        understood = await self._with_learned_type(understood, learned)
        keyword_task = asyncio.create_task(self._keyword_search(understood.keyword, depth, filters))
        try:
            vector = await self._encode(understood.text)
            typed = await self._with_guessed_type(understood, vector)
            if typed is not understood:
                # Words naming no type: the keyword leg looks again, for the type their meaning is nearest.
                # Only such queries wait for the encoder before their keyword search.
                keyword_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await keyword_task
                understood = typed
                keyword_task = asyncio.create_task(self._keyword_search(understood.keyword, depth, filters))
            fetch = self._hybrid_hits(
                vector, understood.keyword, filters, prefetched=(depth, keyword_task), learned=learned
            )
            page = await ranked_page(fetch, self.catalog, offset=offset, limit=limit)
            matched = (await keyword_task).total if understood.keyword.admitting else None
            return page, matched, understood.product_type
        finally:
            # Normally already awaited; after a failure elsewhere, stop it and collect its outcome quietly.
            keyword_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keyword_task

    async def _with_learned_type(self, understood: UnderstoodQuery, learned: LearnedQuery | None) -> UnderstoodQuery:
        """The query asking for the type its shoppers chose, when its words name none (no encoder needed)."""
        if learned is None or learned.product_type is None:
            return understood
        types = await self.product_types.product_types() if self.product_types is not None else None
        names = types.names if types is not None else (learned.product_type,)
        if names_a_type(understood, type_words(names)):
            return understood
        return with_type(understood, learned.product_type, await self._vocabulary(), weights=self.tuning.understanding)

    async def _with_guessed_type(self, understood: UnderstoodQuery, vector: Vector) -> UnderstoodQuery:
        if self.product_types is None or understood.product_type is not None:  # none, or learned from shoppers
            return understood
        types = await self.product_types.product_types()
        if types is None or names_a_type(understood, type_words(types.names)):
            return understood
        guessed = types.nearest(vector, guessing=self.tuning.type_guessing)
        if guessed is None:
            return understood
        return with_type(understood, guessed, await self._vocabulary(), weights=self.tuning.understanding)

    async def _encode(self, text: str) -> Vector:
        t0 = time.perf_counter()
        vector = await self.encoder.encode_text(text)
        self.observe("encode_query", time.perf_counter() - t0)
        return vector

    def _index_hits(self, vector: Vector, filters: SearchFilters | None) -> HitsFetcher:
        async def hits(k: int) -> IndexHits:
            t1 = time.perf_counter()
            found = await self.index.search(vector, k=k, filters=filters)
            self.observe("index_search", time.perf_counter() - t1)
            return found

        return hits

    async def _keyword_search(self, query: KeywordQuery, k: int, filters: SearchFilters | None) -> KeywordHits:
        assert self.keywords is not None
        t1 = time.perf_counter()
        found = await self.keywords.search(query, k=k, filters=filters)
        self.observe("keyword_search", time.perf_counter() - t1)
        return found

    def _keyword_only(self, query: KeywordQuery, filters: SearchFilters | None) -> HitsFetcher:
        async def hits(k: int) -> IndexHits:
            found = await self._keyword_search(query, k, filters)
            return IndexHits(ids=found.ids, scores=found.scores, total=found.total, index_version=self.index_version())

        return hits

    def _hybrid_hits(
        self,
        vector: Vector,
        query: KeywordQuery,
        filters: SearchFilters | None,
        *,
        prefetched: tuple[int, asyncio.Task[KeywordHits]],
        learned: LearnedQuery | None,
    ) -> HitsFetcher:
        index_hits = self._index_hits(vector, filters)
        tuning = self.tuning
        prefetched_depth, prefetched_hits = prefetched

        async def keyword_hits(depth: int) -> KeywordHits:
            if depth <= prefetched_depth:
                return await prefetched_hits
            return await self._keyword_search(query, depth, filters)

        async def hits(k: int) -> IndexHits:
            depth = max(k, tuning.fusion_depth)
            dense, lexical = await asyncio.gather(index_hits(depth), keyword_hits(depth))
            t1 = time.perf_counter()
            lists = [
                Ranked(lexical.ids, tuning.keyword_weight, scores=lexical.scores, normalise="max"),
                Ranked(dense.ids, tuning.vector_weight, scores=dense.scores, normalise="minmax"),
            ]
            fused = linear_fusion(lists) if tuning.fusion == "linear" else reciprocal_rank_fusion(lists, k=tuning.rrf_k)
            if learned is not None:
                fused = rerank(fused, learned, weight=tuning.learned_weight)
            self.observe("fusion", time.perf_counter() - t1)
            # Keyword matches all satisfy the filters, so their count is a floor on the products that do.
            return IndexHits(
                ids=fused.ids[:k],
                scores=fused.scores[:k],
                total=max(dense.total, lexical.total),
                index_version=dense.index_version,
            )

        return hits


def _message(
    results: list[ProductResult],
    understood: UnderstoodQuery,
    applied: dict[str, Any],
    *,
    mode: SearchMode,
    matched: int | None,
) -> str | None:
    """What a shopper should know about the page (empty, or not what the words asked); None when all is well."""
    bounds = [f"{name} {value:g}" for name, value in applied.items() if name in ("min_price", "max_price")]
    with_price = f" with the price taken from its words ({', '.join(bounds)})" if bounds else ""
    if not results:
        if mode == "keyword" and understood.keyword.is_empty:
            return "No products match this search: none of its words occur in the catalog."
        return f"No products match this search{with_price}." if bounds else NO_RESULTS
    if matched == 0:
        return f"No product matches the words of this search{with_price}; these are the closest products."
    colours = applied.get("colour", [])
    if colours and not any(result.colour in colours for result in results):
        return f"Nothing in {' or '.join(colours)} matches this search; these are the closest matches."
    return None


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
