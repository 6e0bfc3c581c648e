"""The index service: it batches vector searches over the CURRENT index version, and swaps versions live.

Callers hold it with `bentoml.depends(VectorIndexService)` and always send a batch (a list); the wire models
are in runners/index_service_api.py, importable without faiss (this module imports faiss only inside the service):

    [result] = await self.index.to_async.search([IndexQuery(vector=v, k=20, filters=filters)])
    found = await self.index.to_async.vectors([40026645008, ...])  # {id: [float, ...]}; unknown ids absent
    facts = await self.index.to_async.info()  # {"loaded", "version", "model_tag", "size", "dim", "kind", ...}

BentoML merges concurrent `search` calls into batches of at most INDEX_MAX_BATCH_SIZE queries, waiting at
most INDEX_MAX_LATENCY_MS; past that deadline its dispatcher answers 503 rather than queue further, so size
the deadline to a batch of filtered queries on the hardware (a few ms each at 1M products). The unfiltered
queries of a batch go to faiss in one call; each filtered one is planned on its own (runners/vector_index.py).

Hot swap: the service holds a `LiveIndex` (runners/live_index.py), which reloads the version root/CURRENT
names in the background; a search reads it once per batch, so batches in flight finish on the index they
started with. With INDEX_IN_PROCESS the API workers hold a `LiveIndex` of their own instead of this service.

Until any version exists the service starts anyway: /readyz answers 503, `info()` says `loaded: false`
and why, and `search`/`vectors` answer 503.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument, ServiceUnavailable
from prometheus_client import Histogram

from domain.settings import get_settings
from runners import batching, serving
from runners.index_service_api import IndexQuery, IndexResult
from runners.live_index import LiveIndex

if TYPE_CHECKING:
    from runners.vector_index import VectorIndex

settings = get_settings()  # batching limits are decorator arguments, so they are read at import time
batching.apply(settings.batching_policy == "vitrine")  # see runners/batching.py
MAX_VECTOR_IDS = 10_000

BATCH_SIZE = Histogram(
    "vitrine_index_batch_size", "Queries in each search batch the index ran.", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
BATCH_SECONDS = Histogram(
    "vitrine_index_batch_seconds",
    "Time to answer one search batch.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


@bentoml.service(
    workers=1,  # one process holds the index in memory; faiss and numpy use the cores within it
    traffic={"timeout": 30},
    runner_connection=serving.RUNNER_CONNECTION,
    logging={"access": {"enabled": settings.runner_access_log}},  # a line per internal call; the API logs requests
)
class VectorIndexService:
    def __init__(self) -> None:
        current = get_settings()
        self.live = LiveIndex(current.resolved_index_path, reload_interval_s=current.index_reload_interval_s)
        self.live.reload()

    @bentoml.on_startup
    async def start_watcher(self) -> None:
        self.live.start_watching()
        serving.settle_gc_after_startup()

    @bentoml.on_shutdown
    async def stop_watcher(self) -> None:
        await self.live.stop_watching()

    def __is_ready__(self) -> bool:
        return self.live.current is not None

    def _require_index(self) -> VectorIndex:
        index = self.live.current
        if index is None:
            raise ServiceUnavailable(self.live.error or "no index loaded")
        return index

    # --- APIs ---
    @bentoml.api(
        batchable=True,
        max_batch_size=settings.index_max_batch_size,
        max_latency_ms=settings.index_max_latency_ms,
    )
    def search(self, queries: list[IndexQuery]) -> list[IndexResult]:
        started = time.perf_counter()
        index = self._require_index()  # read once: the whole batch runs on this version
        results: list[IndexResult | None] = [None] * len(queries)
        good: list[int] = []
        for i, query in enumerate(queries):
            problem = _query_problem(query, index.dim)
            if problem is None:
                good.append(i)
            else:
                results[i] = IndexResult(ids=[], scores=[], total=0, index_version=index.version, error=problem)
        if good:
            matrix = np.asarray([queries[i].vector for i in good], dtype=np.float32)
            found = index.search_batch(
                matrix, k=[queries[i].k for i in good], filters=[queries[i].filters for i in good]
            )
            for i, hits in zip(good, found, strict=True):
                results[i] = IndexResult(
                    ids=hits.ids.tolist(), scores=hits.scores.tolist(), total=hits.total, index_version=index.version
                )
        BATCH_SIZE.observe(len(queries))
        BATCH_SECONDS.observe(time.perf_counter() - started)
        return [result for result in results if result is not None]

    @bentoml.api
    def vectors(self, product_ids: list[int]) -> dict[int, list[float]]:
        """Stored vectors by product id, for recommendations; ids not in the index are absent."""
        if len(product_ids) > MAX_VECTOR_IDS:
            raise InvalidArgument(f"at most {MAX_VECTOR_IDS} product ids per call")
        index = self._require_index()
        return {pid: vector.tolist() for pid, vector in index.vectors_for(product_ids).items()}

    @bentoml.api
    async def info(self) -> dict[str, Any]:
        return self.live.info()


def _query_problem(query: IndexQuery, dim: int) -> str | None:
    if len(query.vector) != dim:
        return f"vector has {len(query.vector)} dimensions; the index has {dim}"
    norm = float(np.linalg.norm(np.asarray(query.vector, dtype=np.float32)))
    if not np.isfinite(norm) or norm == 0.0:
        return "vector must be finite and non-zero"
    return None


serving.fix_output_media_types(VectorIndexService)
serving.trace_only_with_an_exporter()
