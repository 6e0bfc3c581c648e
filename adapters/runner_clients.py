"""The API service's view of its two runners, as the domain protocols (QueryEncoder, VectorSearcher).

A request's query encoding and index search go out at once while the runner has fewer than
`RUNNER_CALLS_IN_FLIGHT` calls from this worker; requests that come meanwhile share the next call
(adapters/coalesce.py `InFlightBatcher`), and the runners' adaptive batching merges the calls of all API workers.
A runner that cannot answer becomes `DependencyDown` (503, retryable), never a 500.
Hot query embeddings are cached, so a repeated query skips the encoder entirely.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sized
from typing import Any, Protocol, TypeVar

import numpy as np
from bentoml.exceptions import InvalidArgument

from adapters.cache import Cache
from adapters.cheap_first import GATE as cheap_first
from adapters.coalesce import InFlightBatcher
from adapters.deadline import DependencyGuard
from domain import cache_keys
from domain.errors import DependencyDown, InvalidRequest, Unsupported, VitrineError
from domain.filters import SearchFilters
from domain.ports import IndexHits, Vector
from runners.index_service_api import IndexQuery, IndexResult

T = TypeVar("T")


class EncoderFacts(Protocol):
    """What the encoder said of itself (adapters/health.py RunnerState)."""

    @property
    def encoder_model_tag(self) -> str | None: ...

    @property
    def has_image_tower(self) -> bool: ...


async def call_runner(
    guard: DependencyGuard, make_call: Callable[[], Awaitable[T]], *, deadline_scale: float = 1.0
) -> T:
    """One call to a runner under its guard: vitrine's own errors as they are (a refusal, or DependencyDown from
    the guard), anything else (the runner's connection failed, it shed the request) as DependencyDown."""
    try:
        return await guard.call(make_call, deadline_scale=deadline_scale)
    except VitrineError:
        raise
    except Exception as exc:
        raise DependencyDown(guard.dependency, f"{type(exc).__name__}: {exc}") from exc


class EncoderClient:
    def __init__(
        self,
        runner: Any,
        cache: Cache,
        *,
        facts: EncoderFacts,
        ttl: int,
        observe: Callable[[str, float], None],
        cache_enabled: bool = True,
        calls_in_flight: int = 0,
        max_batch: int = 32,
    ) -> None:
        self._runner = runner
        self.guard = DependencyGuard("encoder", deadline_s=None)  # given a deadline by adapters/deadline.py
        self._cache = cache
        self._cache_enabled = cache_enabled
        self._facts = facts
        self._ttl = ttl
        self._observe = observe
        self._encode: Callable[[str], Awaitable[Vector]] = (
            InFlightBatcher(self._encode_batch, max_in_flight=calls_in_flight, max_batch=max_batch)
            if calls_in_flight
            else self._encode_alone
        )

    async def _encode_batch(self, texts: list[str]) -> list[Vector]:
        vectors = await call_runner(
            self.guard, lambda: self._runner.to_async.encode_text(texts), deadline_scale=bulk_deadline_scale(texts)
        )
        return list(np.asarray(vectors, dtype=np.float32))

    async def _encode_alone(self, text: str) -> Vector:
        [vector] = await self._encode_batch([text])
        return vector

    async def info(self) -> dict[str, Any]:
        facts: dict[str, Any] = await self._runner.to_async.info()
        return facts

    async def ping(self) -> None:
        """The guard's probe: answers once the encoder does, bypassing the open breaker."""
        await self._runner.to_async.info()

    def _cache_keys(self, texts: list[str]) -> list[str] | None:
        """The query-embedding cache keys of `texts`; None when they are not cached: caching is off, or the encoder
        has not yet said which model it runs (a key names the model)."""
        model = self._facts.encoder_model_tag
        if not model or not self._cache_enabled:
            return None
        return [cache_keys.query_embedding(model=model, query=text) for text in texts]

    async def encode_text(self, text: str) -> Vector:
        keys = self._cache_keys([text])
        if keys is not None:
            cached = await self._cache.get_bytes(keys[0], kind="query_embedding")
            if cached is not None:
                return np.frombuffer(cached, dtype=np.float32)
        started = time.perf_counter()
        vector = await cheap_first.sent_then_turn(self._encode(text))
        self._observe("encode", time.perf_counter() - started)  # the call, or the cheap requests' turn if longer
        if keys is not None:
            self._cache.write_behind(self._cache.set_bytes(keys[0], vector.tobytes(), ttl=self._ttl))
        return vector

    async def encode_texts(self, texts: list[str]) -> list[Vector]:
        """Many queries in one encoder call (the bulk endpoints): cached vectors are reused, the rest encoded
        together. Keep lists within ENCODER_MAX_BATCH_SIZE: BentoML splits a longer one and sheds (503) the
        rest once it has waited past ENCODER_MAX_LATENCY_MS (adapters/coalesce.py)."""
        keys = self._cache_keys(texts)
        found: list[Vector | None] = [None] * len(texts)
        if keys is not None:
            cached = await asyncio.gather(*(self._cache.get_bytes(key, kind="query_embedding") for key in keys))
            found = [None if raw is None else np.frombuffer(raw, dtype=np.float32) for raw in cached]
        missing = sorted({text for text, vector in zip(texts, found, strict=True) if vector is None})
        if missing:
            started = time.perf_counter()
            encoded = await cheap_first.sent_then_turn(self._encode_batch(missing))
            self._observe("encode_many", time.perf_counter() - started)
            fresh = dict(zip(missing, encoded, strict=True))
            found = [fresh[text] if vector is None else vector for text, vector in zip(texts, found, strict=True)]
            if keys is not None:
                for text, vector in fresh.items():
                    self._cache.write_behind(
                        self._cache.set_bytes(keys[texts.index(text)], vector.tobytes(), ttl=self._ttl)
                    )
        return [vector for vector in found if vector is not None]

    async def encode_image(self, image: Any) -> Vector:
        if not self._facts.has_image_tower:  # known from the encoder's info(): no hop for a certain refusal
            tag = self._facts.encoder_model_tag or "unknown"
            raise Unsupported(
                f"the loaded model ({tag}) has no image tower; import an open-clip model to search by image",
                field="image",
            )
        try:
            vectors = await cheap_first.sent_then_turn(
                self.guard.call(lambda: self._runner.to_async.encode_image([image]), deadline_scale=4)
            )
        except VitrineError:
            raise
        except InvalidArgument as exc:  # the runner refused this image (or this model has no image tower)
            raise InvalidRequest(str(exc), field="image") from exc
        except Exception as exc:
            raise DependencyDown("encoder", f"{type(exc).__name__}: {exc}") from exc
        vector: Vector = np.asarray(vectors, dtype=np.float32)[0]
        return vector


def bulk_deadline_scale(items: Sized) -> float:
    """A call for many items does many requests' work in one: each ten items past the first add one deadline
    (one item: 1; 101 searches: 11)."""
    return 1 + max(0, len(items) - 1) / 10


class IndexClient:
    """Keeps the index version last seen, so cache keys follow a hot-swapped index within one request."""

    def __init__(self, runner: Any, *, calls_in_flight: int = 0, max_batch: int = 64) -> None:
        self._runner = runner
        self.guard = DependencyGuard("index", deadline_s=None)  # given a deadline by adapters/deadline.py
        self.version = "none"
        self._search: Callable[[IndexQuery], Awaitable[IndexResult]] = (
            InFlightBatcher(self._search_batch, max_in_flight=calls_in_flight, max_batch=max_batch)
            if calls_in_flight
            else self._search_alone
        )

    async def _search_batch(self, queries: list[IndexQuery]) -> list[IndexResult]:
        results: list[IndexResult] = await call_runner(
            self.guard, lambda: self._runner.to_async.search(queries), deadline_scale=bulk_deadline_scale(queries)
        )
        return results

    async def _search_alone(self, query: IndexQuery) -> IndexResult:
        [result] = await self._search_batch([query])
        return result

    async def search(self, vector: Vector, *, k: int, filters: SearchFilters | None) -> IndexHits:
        query = IndexQuery(vector=np.asarray(vector, dtype=np.float32).tolist(), k=k, filters=filters)
        result = await cheap_first.sent_then_turn(self._search(query))
        if result.error:  # this query alone was refused (wrong dimension, zero vector): the caller's fault
            raise InvalidRequest(f"the index refused the query: {result.error}")
        self.version = result.index_version
        return IndexHits(
            ids=list(result.ids), scores=list(result.scores), total=result.total, index_version=result.index_version
        )

    async def search_many(
        self, queries: list[tuple[Vector, int, SearchFilters | None]]
    ) -> list[IndexHits | VitrineError]:
        """Many (vector, k, filters) searches in one index call (the bulk endpoints). A query the index refuses
        is that query's InvalidRequest, in its place; the index being down fails the whole call."""
        batch = [
            IndexQuery(vector=np.asarray(vector, dtype=np.float32).tolist(), k=k, filters=filters)
            for vector, k, filters in queries
        ]
        results = await cheap_first.sent_then_turn(self._search_batch(batch))
        answers: list[IndexHits | VitrineError] = []
        for result in results:
            if result.error:
                answers.append(InvalidRequest(f"the index refused the query: {result.error}"))
                continue
            self.version = result.index_version
            answers.append(
                IndexHits(
                    ids=list(result.ids),
                    scores=list(result.scores),
                    total=result.total,
                    index_version=result.index_version,
                )
            )
        return answers

    async def vectors(self, product_ids: list[int]) -> dict[int, Vector]:
        found = await call_runner(self.guard, lambda: self._runner.to_async.vectors(product_ids))
        return {int(pid): np.asarray(vec, dtype=np.float32) for pid, vec in found.items()}

    async def ping(self) -> None:
        """The guard's probe: answers once the index does, bypassing the open breaker."""
        await self._runner.to_async.info()

    async def info(self) -> dict[str, Any]:
        info: dict[str, Any] = await call_runner(self.guard, lambda: self._runner.to_async.info())
        if info.get("version"):
            self.version = str(info["version"])
        return {**info, "in_process": False}
