"""The index inside the API worker (INDEX_IN_PROCESS=true): the same protocol as `IndexClient`, no hop.

Each API worker holds a `LiveIndex` of its own (runners/live_index.py: the same loading, hot swap and failure
rules as the index service), memory-mapped, so the workers of one machine share its pages. A search runs in a
worker thread: FAISS releases the GIL, so it runs beside the event loop's Python work on the other core instead
of holding the loop for its ~1-5 ms (a wave of 50 simultaneous requests would otherwise queue behind every
search in it); the thread hand-off costs ~0.1 ms, far less than the index service's hop (~8 ms of CPU in the
index process for ~1 ms of FAISS, plus serialisation in the API worker). Calls are not batched across
requests; on one machine batching the index bought nothing but that hop (index batches stayed at 1-4).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from adapters.cheap_first import GATE as cheap_first
from domain.errors import DependencyDown, InvalidRequest
from domain.filters import SearchFilters
from domain.ports import IndexHits, Vector
from runners.live_index import LiveIndex
from runners.vector_index import VectorIndex

MAX_VECTOR_IDS = 10_000
MAX_K = 1000  # as the index service's API (runners/index_service_api.py)


class InProcessIndex:
    def __init__(self, root: Path, *, reload_interval_s: float) -> None:
        self.live = LiveIndex(root, reload_interval_s=reload_interval_s)
        self.version = "none"

    async def start(self) -> None:
        """Load the CURRENT version (off the loop: memory-mapped, ~1 s at 1M products), then watch for new ones."""
        await asyncio.to_thread(self.live.reload)
        self.live.start_watching()

    async def close(self) -> None:
        await self.live.stop_watching()

    def _index(self) -> VectorIndex:
        index = self.live.current
        if index is None:
            raise DependencyDown("index", self.live.error or "no index loaded")
        self.version = index.version
        return index

    async def search(self, vector: Vector, *, k: int, filters: SearchFilters | None) -> IndexHits:
        index = self._index()  # read once: this search runs on one version
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (index.dim,) or not np.all(np.isfinite(query)) or not np.any(query):
            raise InvalidRequest(f"the index refused the query: a finite, non-zero vector of {index.dim} dimensions")
        searching = asyncio.to_thread(index.search, query, k=min(k, MAX_K), filters=filters)
        hits = await cheap_first.sent_then_turn(searching)
        return IndexHits(ids=hits.ids.tolist(), scores=hits.scores.tolist(), total=hits.total,
                         index_version=index.version)  # fmt: skip

    async def vectors(self, product_ids: list[int]) -> dict[int, Vector]:
        if len(product_ids) > MAX_VECTOR_IDS:
            raise InvalidRequest(f"at most {MAX_VECTOR_IDS} product ids per call")
        return self._index().vectors_for(product_ids)

    async def info(self) -> dict[str, Any]:
        facts = self.live.info()
        if facts.get("version"):
            self.version = str(facts["version"])
        return {**facts, "in_process": True}
