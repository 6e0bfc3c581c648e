"""The composition root: builds, per API worker, everything the endpoints use, and tears it down again.

Built in the service's async start-up hook (so the database engine and the Redis pool belong to the worker's
own event loop), closed in its shutdown hook. `service.py` only calls into `Components`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import deadline
from adapters.cache import Cache
from adapters.db.engine import create_engine
from adapters.db.interactions import SqlInteractionLog
from adapters.db.keyword_search import SqlKeywordSearch
from adapters.db.products import best_products, count_active_products, fetch_products, product_exists
from adapters.metrics import FEEDBACK_EVENTS, INDEX_VERSION, observe_stage
from adapters.observability import Observability
from adapters.product_cache import CachedCatalog
from adapters.runner_clients import EncoderClient, IndexClient
from adapters.user_state import CacheSessionStore, CacheUserVersions, Profiles
from adapters.vector_cache import CachedProductVectors
from adapters.warming import warm_forever
from domain import cache_keys
from domain.errors import DependencyDown
from domain.feedback import FeedbackPipeline
from domain.recommend import RecommendPipeline
from domain.search import SearchPipeline
from domain.settings import Settings

log = logging.getLogger("vitrine.components")

# Once ready, the runners are asked rarely (each ask is a log line in every runner); /status asks on demand.
RUNNER_POLL_S = 30.0


@dataclass
class RunnerState:
    """What the API knows of its runners, refreshed in the background (used by cache keys, /ready, /status)."""

    encoder: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)
    encoder_error: str | None = None
    index_error: str | None = None

    @property
    def model_tag(self) -> str:
        return str(self.encoder.get("model_tag", "unknown"))

    @property
    def ready(self) -> bool:
        return bool(self.encoder) and bool(self.index.get("loaded"))


class Components:
    def __init__(self, settings: Settings, *, encoder_runner: Any, index_runner: Any) -> None:
        self.settings = settings
        self.engine: AsyncEngine = create_engine(settings)
        self.cache = Cache.connect(settings.redis_url, timeout_s=settings.redis_timeout_s)
        self.runners = RunnerState()
        model_tag = lambda: self.runners.model_tag  # noqa: E731 - read at call time: known once the encoder answers
        self.encoder_runner = encoder_runner
        self.index = IndexClient(index_runner)
        self.product_vectors = CachedProductVectors(self.index, index_version=lambda: self.index.version)
        self.encoder = EncoderClient(
            encoder_runner,
            self.cache,
            model_tag="unknown",
            ttl=settings.cache_ttl_query_embedding,
            observe=observe_stage,
            cache_enabled=settings.api_enable_cache,
        )
        self.keyword_search = SqlKeywordSearch(self.engine)
        self.catalog = CachedCatalog(
            self.fetch_products,
            self.product_exists,
            self.cache,
            ttl=settings.api_cache_ttl_product,
            observe=observe_stage,
        )
        self.search = SearchPipeline(
            encoder=self.encoder,
            index=self.index,
            catalog=self.catalog,
            cache=self.cache,
            model_tag=model_tag,
            index_version=lambda: self.index.version,
            keywords=self.keyword_search,  # the keyword leg of hybrid search (migration 0002)
            cache_ttl=settings.api_cache_ttl_search,
            cache_enabled=settings.api_enable_cache,
            observe=observe_stage,
        )
        self.interactions = SqlInteractionLog(self.engine)
        self.sessions = CacheSessionStore(self.cache, model_tag=model_tag)
        self.user_versions = CacheUserVersions(self.cache)
        self.profiles = Profiles(
            self.cache,
            self.interactions,
            self.product_vectors,
            model_tag=model_tag,
            ttl=settings.cache_ttl_user_embedding,
        )
        self.feedback = FeedbackPipeline(
            products=self.catalog,
            interactions=self.interactions,
            vectors=self.product_vectors,
            sessions=self.sessions,
            versions=self.user_versions,
            refresh_profile=self.profiles.schedule,
            on_accepted=lambda kind: FEEDBACK_EVENTS.labels(interaction_type=kind.value).inc(),
        )
        self.recommend = RecommendPipeline(
            encoder=self.encoder,
            index=self.index,
            vectors=self.product_vectors,
            catalog=self.catalog,
            profiles=self.profiles,
            sessions=self.sessions,
            interactions=self.interactions,
            versions=self.user_versions,
            best_products=self.best_products,
            cache=self.cache,
            model_tag=model_tag,
            index_version=lambda: self.index.version,
            cache_ttl=settings.api_cache_ttl_recommend,
            cache_enabled=settings.api_enable_cache,
            observe=observe_stage,
        )
        self.observability = Observability(self.cache, slow_query_ms=settings.slow_query_ms)
        deadline.guard_runner_calls(self.encoder, self.index, settings)  # a dead runner costs < 1 s
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._poll_runners(), name="vitrine-poll-runners"))
        self._tasks.append(asyncio.create_task(self._warm_when_ready(), name="vitrine-cache-warming"))

    async def _warm_when_ready(self) -> None:
        while not self.runners.ready:
            await asyncio.sleep(1.0)
        await warm_forever(self.cache, self.search, self.recommend)

    def track_query(self, query: str) -> None:
        """Count the query for popular-query stats and warming, without holding the request up."""
        task = asyncio.create_task(self.cache.bump_score(cache_keys.query_counts(), cache_keys.normalise_query(query)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        await self.profiles.drain()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.keyword_search.close()
        await self.cache.close()
        await self.engine.dispose()

    # --- database access, with failures mapped to 503 -----------------------------------------------------
    async def fetch_products(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        try:
            return await fetch_products(self.engine, ids)
        except (OperationalError, DBAPIError, OSError, ConnectionError) as exc:
            raise DependencyDown("database", str(exc).splitlines()[0]) from exc

    async def product_exists(self, product_id: int) -> bool:
        try:
            return await product_exists(self.engine, product_id, active_only=False)
        except (OperationalError, DBAPIError, OSError, ConnectionError) as exc:
            raise DependencyDown("database", str(exc).splitlines()[0]) from exc

    async def best_products(self, limit: int) -> list[int]:
        try:
            return await best_products(self.engine, limit=limit)
        except (OperationalError, DBAPIError, OSError, ConnectionError) as exc:
            raise DependencyDown("database", str(exc).splitlines()[0]) from exc

    # --- health -------------------------------------------------------------------------------------------
    async def database_check(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(2.0):
                products = await count_active_products(self.engine)
        except Exception as exc:
            return {"state": "down", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        return {
            "state": "up",
            "backend": "sqlite" if self.settings.is_sqlite else "postgresql",
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "catalog_size": products,
        }

    async def cache_check(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(1.0):
                latency = await self.cache.ping()
        except Exception as exc:
            return {"state": "down", "backend": self.cache.backend, "error": f"{type(exc).__name__}: {exc}"}
        return {"state": "up", "backend": self.cache.backend, "latency_ms": latency}

    async def readiness(self) -> dict[str, Any]:
        database = await self.database_check()
        checks = {
            "model_loaded": bool(self.runners.encoder),
            "index_loaded": bool(self.runners.index.get("loaded")),
            "database": database["state"] == "up",
        }
        return {"ready": all(checks.values()), "checks": checks}

    async def status(self) -> dict[str, Any]:
        await self.refresh_runners()
        database, cache = await asyncio.gather(self.database_check(), self.cache_check())
        encoder = {"state": "up" if self.runners.encoder else "down", **self.runners.encoder}
        if self.runners.encoder_error:
            encoder["error"] = self.runners.encoder_error
        index = {"state": "up" if self.runners.index.get("loaded") else "down", **self.runners.index}
        if self.runners.index_error:
            index["error"] = self.runners.index_error
        essential_down = any(part["state"] != "up" for part in (database, encoder, index))
        overall = "unhealthy" if essential_down else ("degraded" if cache["state"] != "up" else "ok")
        return {
            "status": overall,
            "database": database,
            "cache": cache,
            "encoder": encoder,
            "index": index,
            "model_version": self.runners.model_tag,
            "index_version": self.index.version,
            "cache_enabled": self.settings.api_enable_cache,
        }

    # --- runner state -------------------------------------------------------------------------------------
    async def refresh_runners(self) -> None:
        try:
            self.runners.encoder = await self.encoder_runner.to_async.info()
            self.runners.encoder_error = None
            self.encoder.model_tag = self.runners.model_tag
        except Exception as exc:
            self.runners.encoder_error = f"{type(exc).__name__}: {exc}"
        try:
            previous = self.runners.index.get("version")
            self.runners.index = await self.index.info()
            self.runners.index_error = None
            if self.runners.index.get("version") != previous:
                INDEX_VERSION.labels(
                    version=str(self.runners.index.get("version")), model=str(self.runners.index.get("model_tag"))
                ).set(1)
        except DependencyDown as exc:
            self.runners.index_error = exc.message

    async def _poll_runners(self) -> None:
        # Fast at first (the runners load their model and index while the API starts), then every few seconds.
        delay = 0.5
        while True:
            await self.refresh_runners()
            if self.runners.ready:
                delay = RUNNER_POLL_S
            await asyncio.sleep(delay)
