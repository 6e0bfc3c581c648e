"""The bulk endpoints' wiring: the ordinary pipelines, with encoder and index calls gathered per batch.

For each bulk request, copies of the search and recommend pipelines are made whose encoder and index are
Coalescers (adapters/coalesce.py) over EncoderClient.encode_texts and IndexClient.search_many: the items run
concurrently, and their runner asks leave as one call per runner batch (ENCODER_MAX_BATCH_SIZE texts,
INDEX_MAX_BATCH_SIZE queries; a few more when an item needs a second round, e.g. a page backfilled past
inactive products), where N single requests would make N calls. Everything else (cache, catalog, database)
is shared.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prometheus_client import Counter

from adapters.coalesce import Coalescer
from adapters.local_index import InProcessIndex
from adapters.runner_clients import EncoderClient, IndexClient
from domain import bulk
from domain.filters import SearchFilters
from domain.ports import IndexHits, Vector
from domain.recommend import RecommendPipeline
from domain.search import SearchPipeline

BULK_ITEMS = Counter("vitrine_bulk_items", "Items received by the bulk endpoints.", ["endpoint"])
BULK_RUNNER_CALLS = Counter(
    "vitrine_bulk_runner_calls", "Calls the bulk endpoints made to a runner (one per gathered batch).", ["runner"]
)


class GatheredEncoder:
    """The Encoder protocol, with text queries gathered into one runner call."""

    def __init__(self, client: EncoderClient, *, max_batch: int) -> None:
        self._client = client
        self.texts: Coalescer[str, Vector] = Coalescer(client.encode_texts, max_batch=max_batch)

    async def encode_text(self, text: str) -> Vector:
        return await self.texts(text)

    async def encode_image(self, image: Any) -> Vector:
        return await self._client.encode_image(image)


class GatheredIndex:
    """The VectorSearcher protocol, with searches gathered into one runner call. An index without `search_many`
    (one held in the API process: no runner hop to save) is searched directly."""

    def __init__(self, client: Any, *, max_batch: int) -> None:
        self._client = client
        many = getattr(client, "search_many", None)
        self.searches: Coalescer[tuple[Vector, int, SearchFilters | None], IndexHits] | None = (
            Coalescer(many, max_batch=max_batch) if many is not None else None
        )

    async def search(self, vector: Vector, *, k: int, filters: SearchFilters | None) -> IndexHits:
        if self.searches is None:
            hits: IndexHits = await self._client.search(vector, k=k, filters=filters)
            return hits
        return await self.searches((vector, k, filters))


@dataclasses.dataclass
class BulkRun:
    """One bulk request's pipelines; `runner_calls` says how many encoder and index calls it made."""

    encoder: GatheredEncoder
    index: GatheredIndex
    search: SearchPipeline
    recommend: RecommendPipeline

    @property
    def runner_calls(self) -> dict[str, int]:
        index_calls = self.index.searches.batches_sent if self.index.searches is not None else 0
        return {"encoder": self.encoder.texts.batches_sent, "index": index_calls}

    async def search_batch(self, batch: bulk.SearchBatchRequest) -> bulk.SearchBatchResponse:
        try:
            return await bulk.search_batch(batch, self.search.search)
        finally:
            self._count("search_batch", len(batch.queries))

    async def recommend_batch(self, batch: bulk.RecommendBatchRequest) -> bulk.RecommendBatchResponse:
        try:
            return await bulk.recommend_batch(batch, self.recommend.recommend)
        finally:
            self._count("recommend_batch", len(batch.requests))

    def _count(self, endpoint: str, items: int) -> None:
        BULK_ITEMS.labels(endpoint=endpoint).inc(items)
        for runner, calls in self.runner_calls.items():
            BULK_RUNNER_CALLS.labels(runner=runner).inc(calls)


def bulk_run(
    search: SearchPipeline,
    recommend: RecommendPipeline,
    *,
    encoder: EncoderClient,
    index: IndexClient | InProcessIndex,
    encoder_batch: int,
    index_batch: int,
) -> BulkRun:
    """Pipelines for one bulk request; runner lists of at most `encoder_batch` texts and `index_batch` queries
    (the runners' max_batch_size: a longer list would be split by BentoML and its rest shed past the deadline)."""
    gathered_encoder = GatheredEncoder(encoder, max_batch=encoder_batch)
    gathered_index = GatheredIndex(index, max_batch=index_batch)
    return BulkRun(
        encoder=gathered_encoder,
        index=gathered_index,
        search=dataclasses.replace(search, encoder=gathered_encoder, index=gathered_index),
        recommend=dataclasses.replace(recommend, encoder=gathered_encoder, index=gathered_index),
    )
