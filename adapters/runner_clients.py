"""The API service's view of its two runners, as the domain protocols (QueryEncoder, VectorSearcher).

Every call sends a batch of one: the runners' adaptive batching merges concurrent requests from all API
workers into real batches. A runner that cannot answer becomes `DependencyDown` (503, retryable), never a 500.
Hot query embeddings are cached, so a repeated query skips the encoder entirely.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from bentoml.exceptions import InvalidArgument

from adapters.cache import Cache
from adapters.deadline import DependencyGuard
from domain import cache_keys
from domain.errors import DependencyDown, InvalidRequest, VitrineError
from domain.filters import SearchFilters
from domain.ports import IndexHits, Vector
from runners.index_service_api import IndexQuery


class EncoderClient:
    def __init__(
        self,
        runner: Any,
        cache: Cache,
        *,
        model_tag: str,
        ttl: int,
        observe: Callable[[str, float], None],
        cache_enabled: bool = True,
    ) -> None:
        self._runner = runner
        self.guard = DependencyGuard("encoder", deadline_s=None)  # given a deadline by adapters/deadline.py
        self._cache = cache
        self._cache_enabled = cache_enabled
        self.model_tag = model_tag
        self._ttl = ttl
        self._observe = observe

    async def encode_text(self, text: str) -> Vector:
        key = cache_keys.query_embedding(model=self.model_tag, query=text)
        if self._cache_enabled:
            cached = await self._cache.get_bytes(key, kind="query_embedding")
            if cached is not None:
                return np.frombuffer(cached, dtype=np.float32)
        started = time.perf_counter()
        try:
            vectors = await self.guard.call(lambda: self._runner.to_async.encode_text([text]))
        except VitrineError:
            raise
        except Exception as exc:
            raise DependencyDown("encoder", f"{type(exc).__name__}: {exc}") from exc
        self._observe("encode", time.perf_counter() - started)
        vector = np.asarray(vectors, dtype=np.float32)[0]
        if self._cache_enabled:
            await self._cache.set_bytes(key, vector.tobytes(), ttl=self._ttl)
        return vector

    async def encode_image(self, image: Any) -> Vector:
        try:
            vectors = await self.guard.call(lambda: self._runner.to_async.encode_image([image]), deadline_scale=4)
        except VitrineError:
            raise
        except InvalidArgument as exc:  # the runner refused this image (or this model has no image tower)
            raise InvalidRequest(str(exc), field="image") from exc
        except Exception as exc:
            raise DependencyDown("encoder", f"{type(exc).__name__}: {exc}") from exc
        return np.asarray(vectors, dtype=np.float32)[0]


class IndexClient:
    """Keeps the index version last seen, so cache keys follow a hot-swapped index within one request."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner
        self.guard = DependencyGuard("index", deadline_s=None)  # given a deadline by adapters/deadline.py
        self.version = "none"

    async def search(self, vector: Vector, *, k: int, filters: SearchFilters | None) -> IndexHits:
        query = IndexQuery(vector=np.asarray(vector, dtype=np.float32).tolist(), k=k, filters=filters)
        try:
            [result] = await self.guard.call(lambda: self._runner.to_async.search([query]))
        except VitrineError:
            raise
        except Exception as exc:
            raise DependencyDown("index", f"{type(exc).__name__}: {exc}") from exc
        if result.error:  # this query alone was refused (wrong dimension, zero vector): the caller's fault
            raise InvalidRequest(f"the index refused the query: {result.error}")
        self.version = result.index_version
        return IndexHits(
            ids=list(result.ids), scores=list(result.scores), total=result.total, index_version=result.index_version
        )

    async def vectors(self, product_ids: list[int]) -> dict[int, Vector]:
        try:
            found = await self.guard.call(lambda: self._runner.to_async.vectors(product_ids))
        except Exception as exc:
            raise DependencyDown("index", f"{type(exc).__name__}: {exc}") from exc
        return {int(pid): np.asarray(vec, dtype=np.float32) for pid, vec in found.items()}

    async def info(self) -> dict[str, Any]:
        try:
            info: dict[str, Any] = await self.guard.call(lambda: self._runner.to_async.info())
        except Exception as exc:
            raise DependencyDown("index", f"{type(exc).__name__}: {exc}") from exc
        if info.get("version"):
            self.version = str(info["version"])
        return info
