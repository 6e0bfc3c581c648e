"""The composition root: builds, per API worker, everything the endpoints use, and tears it down again.

Built in the service's async start-up hook (so the database engine and the Redis pool belong to the worker's
own event loop), closed in its shutdown hook. `service.py` only calls into `Components`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import deadline
from adapters.cache import Cache
from adapters.colour_library import colour_lexicon
from adapters.db.engine import create_engine, create_read_engine
from adapters.db.failures import database_call
from adapters.db.interactions import SqlInteractionLog
from adapters.db.keyword_search import SqlKeywordSearch
from adapters.db.migrate import schema_readiness
from adapters.db.products import best_products, count_active_products, fetch_products, product_exists
from adapters.dictionary import english_words
from adapters.health import Health, RunnerState
from adapters.in_flight import until_quiet
from adapters.learned_ranking import ShopLearning
from adapters.local_index import InProcessIndex
from adapters.loop_lag import watch_loop_lag
from adapters.metrics import FEEDBACK_EVENTS, observe_stage
from adapters.observability import Observability
from adapters.product_cache import CachedCatalog
from adapters.product_types import CatalogProductTypes
from adapters.query_counts import QueryCounts
from adapters.runner_clients import EncoderClient, IndexClient
from adapters.shop_words import shop_words
from adapters.user_state import CacheSessionStore, CacheUserVersions, Profiles
from adapters.vector_cache import CachedProductVectors
from adapters.warming import warm_forever
from domain.feedback import FeedbackPipeline
from domain.recommend import RecommendPipeline
from domain.search import SearchPipeline
from domain.settings import Settings

log = logging.getLogger("vitrine.components")


class Components:
    def __init__(self, settings: Settings, *, encoder_runner: Any, index_runner: Any | None) -> None:
        """`index_runner` None: the index lives in this worker (INDEX_IN_PROCESS)."""
        self.settings = settings
        self.engine: AsyncEngine = create_engine(settings)
        self.reader: AsyncEngine = create_read_engine(settings, self.engine)  # reads in one round trip
        self.cache = Cache.connect(settings.redis_url, timeout_s=settings.redis_timeout_s)
        self.runners = RunnerState()  # what the runners said of themselves (adapters/health.py)
        self.index: IndexClient | InProcessIndex = (
            IndexClient(
                index_runner,
                calls_in_flight=settings.runner_calls_in_flight,
                max_batch=settings.index_max_batch_size,
            )
            if index_runner is not None
            else InProcessIndex(settings.resolved_index_path, reload_interval_s=settings.index_reload_interval_s)
        )
        self.product_vectors = CachedProductVectors(self.index, index_version=lambda: self.index.version)
        self.encoder = EncoderClient(
            encoder_runner,
            self.cache,
            facts=self.runners,
            ttl=settings.cache_ttl_query_embedding,
            observe=observe_stage,
            cache_enabled=settings.api_enable_cache,
            calls_in_flight=settings.runner_calls_in_flight,
            max_batch=settings.encoder_max_batch_size,
        )
        self.health = Health(
            self.runners,
            encoder=self.encoder,
            index=self.index,
            cache=self.cache,
            database_check=self.database_check,
            schema_check=self.schema_check,
            poll_every_s=settings.index_reload_interval_s,  # follow an index swap (see adapters/health.py)
        )
        model_tag = self.runners.model_tag  # read per request: known once a runner has said it
        self.keyword_search = SqlKeywordSearch(self.reader)
        self.product_types = CatalogProductTypes(self.reader, self.index.vectors)  # type prototypes (issue 14)
        self.learning = ShopLearning(
            self.reader,
            window_days=settings.search_learning_window_days,
            refresh_s=settings.search_learning_refresh_s,
        )  # what shoppers chose after their searches (issue 14)
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
            colour_names=colour_lexicon(),  # colour shades -> catalog colours (issue 14)
            product_types=self.product_types,
            learned=self.learning if settings.search_learning else None,
            dictionary=english_words(),  # real words are not typos
            shop_words=shop_words(),  # words only a dictionary knows, read as the kinds they are (issue 14)
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
            until_quiet=until_quiet,
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
        self.query_counts = QueryCounts(self.cache)
        deadline.guard_runner_calls(self.encoder, self.index, settings)  # a dead runner costs < 1 s
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if isinstance(self.index, InProcessIndex):
            await self.index.start()
        self.health.start()
        self._tasks.append(asyncio.create_task(watch_loop_lag(), name="vitrine-loop-lag"))
        self._tasks.append(asyncio.create_task(self._warm_when_ready(), name="vitrine-cache-warming"))
        self._tasks.append(asyncio.create_task(self.query_counts.run(), name="vitrine-query-counts"))

    async def _warm_when_ready(self) -> None:
        while not self.runners.ready:
            await asyncio.sleep(1.0)
        await warm_forever(self.cache, self.search, self.recommend, until_quiet=until_quiet)

    def track_query(self, query: str) -> None:
        """Count the query for popular-query stats and warming (sent to Redis once a second, off the request)."""
        self.query_counts.count(query)

    async def close(self) -> None:
        await self.profiles.drain()
        await self.health.close()
        await self.encoder.guard.close()
        if isinstance(self.index, InProcessIndex):
            await self.index.close()
        else:
            await self.index.guard.close()
        for task in self._tasks:
            task.cancel()
        outcomes = await asyncio.gather(*self._tasks, return_exceptions=True)
        for task, outcome in zip(self._tasks, outcomes, strict=True):
            if isinstance(outcome, Exception):  # a failure must not stop the engine and the pool being closed
                log.warning("background task %s had failed: %r", task.get_name(), outcome)
        await self.query_counts.flush()  # the last second's searches
        await self.keyword_search.close()
        await self.product_types.close()
        await self.learning.close()
        await self.cache.close()
        await self.engine.dispose()
        if self.reader is not self.engine:
            await self.reader.dispose()

    # --- database access, with failures mapped to 503 -----------------------------------------------------
    async def fetch_products(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        with database_call():
            return await fetch_products(self.reader, ids)

    async def product_exists(self, product_id: int) -> bool:
        with database_call():
            return await product_exists(self.reader, product_id, active_only=False)

    async def best_products(self, limit: int) -> list[int]:
        with database_call():
            return await best_products(self.reader, limit=limit)

    # --- health -------------------------------------------------------------------------------------------
    async def database_check(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(2.0):
                products = await count_active_products(self.reader)
        except Exception as exc:
            return {"state": "down", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        return {
            "state": "up",
            "backend": "sqlite" if self.settings.is_sqlite else "postgresql",
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "catalog_size": products,
        }

    async def schema_check(self) -> tuple[bool, str]:
        """Whether the database is at this code's schema revision (adapters/db/migrate.py), and why not."""
        try:
            async with asyncio.timeout(2.0):
                return await schema_readiness(self.engine)
        except Exception as exc:
            return False, f"cannot read the schema revision: {type(exc).__name__}: {exc}"
