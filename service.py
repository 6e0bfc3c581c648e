"""vitrine: storefront search and personalization, served with BentoML.

    Vitrine (this file, the API service)          blending, caching, enrichment; async handlers
      ├── TextImageEncoder  (runners/encoder_service.py)   CLIP / MiniLM text and image towers, adaptive batching
      └── VectorIndexService (runners/index_service.py)    FAISS search with filters, adaptive batching, hot reload

Routes, in the order a client meets them:
    POST /api/v1/search            text query -> products                     domain/search.py
    POST /api/v1/search/image      uploaded image -> products                 domain/search.py
    POST /api/v1/search/batch      up to 100 searches, one runner call each   domain/bulk.py
    POST /api/v1/recommend         per-user blend -> products                 domain/recommend.py
    POST /api/v1/recommend/batch   up to 500 recommendations                  domain/bulk.py
    POST /api/v1/feedback          one interaction, stored durably            domain/feedback.py
    POST /api/v1/feedback/batch    up to 500 interactions                     domain/feedback.py
    GET  /health /live /ready /status /cache/stats /performance /performance/slow-queries /   (operators)
    DELETE /cache?kind=...         pattern invalidation (SCAN)
    DELETE /api/v1/users/{id}      privacy erase of one shopper (operator key)     adapters/privacy.py
    GET  /metrics                  Prometheus: BentoML's own plus vitrine_* from every process
    GET  / (a browser), /static/*, /images/products/{id}, /api/v1/products/{id}
                                   the storefront page, its files, photos       adapters/storefront.py

Each handler is a few lines: validated input (pydantic, at the edge), one pipeline call, errors mapped to JSON
in one place (adapters/http_errors.py). The wiring lives in adapters/components.py.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import bentoml
import PIL.Image
from fastapi import FastAPI, Query
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters import privacy, rate_limit, storefront
from adapters.bulk import BulkRun, bulk_run
from adapters.components import Components
from adapters.edge import install_edge
from adapters.fast_lane import FastLane
from adapters.http_errors import error_response, operator_validation_error, unexpected_error_response
from adapters.http_middleware import configure_logging
from adapters.metrics import ENDPOINT_CACHE, ENDPOINT_REQUESTS, observe_stage
from domain import bulk, cache_keys
from domain.api_models import (
    FeedbackAnswer,
    FeedbackBatchRequest,
    FeedbackBatchResponse,
    FeedbackRequest,
    ProductResult,
    RecommendRequest,
    RecommendResponse,
    SearchRequest,
    SearchResponse,
)
from domain.errors import InvalidRequest, VitrineError
from domain.filters import SearchFilters
from domain.settings import get_settings
from runners import serving
from runners.encoder_service import TextImageEncoder
from runners.index_service import VectorIndexService

settings = get_settings()
configure_logging(settings.log_level)
VERSION = "0.1.0"

# Search, recommend and feedback, the requests the shop sends all day, skip BentoML's per-request dispatch once the
# service has started (adapters/fast_lane.py); their @bentoml.api declarations below stay the routes of record.
FAST_LANE = FastLane(server_header="BentoML Service/vitrine")
FAST_LANE_ROUTES = ("search", "recommend", "feedback")
operator_app = FastAPI(title="vitrine operator endpoints", docs_url=None, redoc_url=None, openapi_url=None)
operator_app.add_exception_handler(RequestValidationError, operator_validation_error)


@bentoml.service(
    name="vitrine",
    workers=settings.api_workers,
    traffic={"timeout": 30},
    http={"host": settings.api_host, "port": settings.api_port},
    logging={"access": {"enabled": False}},  # RequestContextMiddleware writes the one access line per request
)
@bentoml.asgi_app(operator_app, path="/")
class Vitrine:
    encoder = bentoml.depends(TextImageEncoder)
    if not settings.index_in_process:  # else each API worker holds the index itself (adapters/local_index.py)
        index = bentoml.depends(VectorIndexService)

    @bentoml.on_startup
    async def start(self) -> None:
        index_runner = None if settings.index_in_process else self.index
        self.components = Components(settings, encoder_runner=self.encoder, index_runner=index_runner)
        await self.components.start()
        self.product_images = storefront.ProductImages(self.components.catalog.fetch, settings.catalog_image_roots)
        FAST_LANE.open(self, [service_definition.apis[name] for name in FAST_LANE_ROUTES])
        serving.settle_gc_after_startup()

    @bentoml.on_shutdown
    async def stop(self) -> None:
        await self.components.close()

    async def _answer(
        self, endpoint: str, work: Awaitable[Any], *, user_id: int | None = None, query: str | None = None
    ) -> Any:
        """Run one endpoint's work: time it, count it, note it if slow, and turn any failure into JSON."""
        started = time.perf_counter()
        try:
            result = await work
        except VitrineError as exc:
            ENDPOINT_REQUESTS.labels(endpoint=endpoint, outcome=f"{exc.status_code}").inc()
            observe_stage(f"{endpoint}.{exc.status_code // 100}xx", time.perf_counter() - started)
            return error_response(exc)
        except Exception as exc:
            ENDPOINT_REQUESTS.labels(endpoint=endpoint, outcome="500").inc()
            observe_stage(f"{endpoint}.5xx", time.perf_counter() - started)
            return unexpected_error_response(exc)
        elapsed = time.perf_counter() - started
        observe_stage(endpoint, elapsed)
        ENDPOINT_REQUESTS.labels(endpoint=endpoint, outcome="200").inc()
        if (cached := getattr(result, "cached", None)) is not None:
            ENDPOINT_CACHE.labels(endpoint=endpoint, cached=str(cached).lower()).inc()
            observe_stage(f"{endpoint}.{'cached' if cached else 'uncached'}", elapsed)
        await self.components.observability.note(endpoint, elapsed, user_id=user_id, query=query)
        return result

    # --- search -------------------------------------------------------------------------------------------
    @bentoml.api(route="/api/v1/search")
    async def search(self, request: SearchRequest, /) -> SearchResponse:
        """Products for a text query, most similar first, with optional filters and pagination."""
        response = await self._answer("search", self.components.search.search(request), query=request.query)
        if isinstance(response, SearchResponse) and response.results:  # popular queries: only ones that found some
            self.components.track_query(request.query)
        return response

    @bentoml.api(route="/api/v1/search/image")
    async def search_image(
        self,
        image: Path,
        filters: SearchFilters | None = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
        offset: Annotated[int, Field(ge=0, le=1000)] = 0,
    ) -> SearchResponse:
        """Products that look like an uploaded image (multipart field `image`)."""
        return await self._answer("search_image", self._search_image(image, filters, limit, offset))

    async def _search_image(self, upload: Path, filters: SearchFilters | None, limit: int, offset: int) -> Any:
        try:
            # The upload arrives as a file; decoding it all here means one unreadable upload is this request's
            # 400 rather than a failure of the whole encoder batch it would have joined.
            image = PIL.Image.open(upload)
            image.load()
        except (OSError, ValueError, PIL.Image.DecompressionBombError) as exc:
            raise InvalidRequest(f"the upload is not a readable image: {exc}", field="image") from exc
        return await self.components.search.search_by_image(image, filters=filters, limit=limit, offset=offset)

    @bentoml.api(route="/api/v1/search/batch")
    async def search_batch(self, batch: bulk.SearchBatchRequest, /) -> bulk.SearchBatchResponse:
        """Up to 100 searches, a result per query in order; their encoder and index work goes in runner batches."""
        work = self._charged("queries", len(batch.queries), lambda: self._bulk().search_batch(batch))
        return await self._answer("search_batch", work)

    async def _charged(self, field: str, items: int, work: Callable[[], Awaitable[Any]]) -> Any:
        """A bulk request's work, once it has paid the rate limit one request per item (the edge took the first
        at the door, before the body was read; the rest is taken here, with the items counted)."""
        await rate_limit.charge_items(items, field=field)
        return await work()

    def _bulk(self) -> BulkRun:
        c, limits = self.components, self.components.settings
        return bulk_run(
            c.search,
            c.recommend,
            encoder=c.encoder,
            index=c.index,
            encoder_batch=limits.encoder_max_batch_size,
            index_batch=limits.index_max_batch_size,
        )

    # --- personalization ----------------------------------------------------------------------------------
    @bentoml.api(route="/api/v1/recommend")
    async def recommend(self, request: RecommendRequest, /) -> RecommendResponse:
        """Per-user results in four contexts (feed, search, similar, category), with the blend used."""
        work = self.components.recommend.recommend(request)
        return await self._answer("recommend", work, user_id=request.user_id, query=request.query)

    @bentoml.api(route="/api/v1/recommend/batch")
    async def recommend_batch(self, batch: bulk.RecommendBatchRequest, /) -> bulk.RecommendBatchResponse:
        """Up to 500 recommendations, a result per request in order; one bad request does not sink the others."""
        work = self._charged("requests", len(batch.requests), lambda: self._bulk().recommend_batch(batch))
        return await self._answer("recommend_batch", work)

    @bentoml.api(route="/api/v1/feedback")
    async def feedback(self, event: FeedbackRequest, /) -> FeedbackAnswer:
        """Store one interaction durably, then update the session; a repeated event_id replays the first answer.
        With context 'search', the `query` searched and the `position` shown, it also teaches the search."""
        return await self._answer("feedback", self._feedback(event), user_id=event.user_id)

    async def _feedback(self, event: FeedbackRequest) -> Any:
        answer, replayed = await self.components.feedback.accept(event)
        return JSONResponse(answer.model_dump(mode="json"), headers={"Idempotent-Replayed": str(replayed).lower()})

    @bentoml.api(route="/api/v1/feedback/batch")
    async def feedback_batch(self, batch: FeedbackBatchRequest, /) -> FeedbackBatchResponse:
        """Up to 500 interactions, a result per event; one bad event does not sink the others."""
        work = self._charged("events", len(batch.events), lambda: self.components.feedback.accept_batch(batch.events))
        return await self._answer("feedback_batch", work)

    # --- operator endpoints (mounted FastAPI app, so they can be GET) -------------------------------------
    @operator_app.get("/health")
    async def health(self) -> dict[str, str]:
        """Cheap: the process answers."""
        return {"status": "ok"}

    @operator_app.get("/live")
    async def live(self) -> dict[str, bool]:
        return {"alive": True}

    @operator_app.get("/ready")
    async def ready(self) -> Response:
        """200 once the index and model are loaded and the database answers; 503 until then."""
        state = await self.components.health.readiness()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    @operator_app.get("/status")
    async def status(self) -> dict[str, Any]:
        """Each dependency's state, versions and latency; `degraded` when the cache is down."""
        return await self.components.health.status(cache_enabled=settings.api_enable_cache)

    @operator_app.get("/cache/stats")
    async def cache_stats(self) -> dict[str, Any]:
        """Hits and misses per kind, hit rate, round-trip times, popular queries, active users."""
        return await self.components.observability.cache_stats()

    @operator_app.delete("/cache")
    async def invalidate_cache(
        self, kind: Literal["search", "rec", "product", "qemb", "session", "profile"] = Query(...)
    ) -> dict[str, Any]:
        """Delete every cached entry of one kind (SCAN, never KEYS)."""
        if kind == "product":
            deleted = await self.components.catalog.invalidate()
        else:
            deleted = await self.components.cache.delete_pattern(cache_keys.pattern(kind))
        return {"kind": kind, "deleted": deleted}

    @operator_app.get("/performance")
    async def performance(self, window_s: float = Query(900.0, ge=0.1, le=86_400)) -> dict[str, Any]:
        """p50/p95/p99 per operation and endpoint over the last `window_s` seconds, across all processes,
        with a health grade and advice."""
        return self.components.observability.performance(window_s=window_s)

    @operator_app.get("/performance/slow-queries")
    async def slow_queries(self, limit: int = Query(100, ge=1, le=10_000)) -> dict[str, Any]:
        """The most recent operations slower than SLOW_QUERY_MS, newest first."""
        return await self.components.observability.slow_queries(limit=limit)

    @operator_app.delete("/api/v1/users/{user_id}")
    async def erase_user(self, user_id: int = PathParam(ge=1, le=2**63 - 1)) -> Any:
        """Privacy erase (operator key): the shopper's events, profile, session and cached recommendations."""
        work = privacy.erase_user(self.components.engine, self.components.cache, user_id)
        return await self._answer("erase_user", work, user_id=user_id)

    # --- the storefront page (adapters/storefront.py) --------------------------------------------------------
    @operator_app.get("/api/v1/products/{product_id}", response_model=ProductResult)
    async def product(self, product_id: int = PathParam(gt=0, le=2**63 - 1)) -> Any:
        """One active product, as search results show it (the product page's data)."""
        return await self._answer("product", storefront.product(self.components.catalog.fetch, product_id))

    @operator_app.get("/images/products/{product_id}", include_in_schema=False)
    async def product_image(self, product_id: int = PathParam(gt=0, le=2**63 - 1)) -> Response:
        """The product's photo from the catalog (open: an <img> cannot send a key), or a placeholder SVG."""
        return await self.product_images.response(product_id)

    @operator_app.get("/static/{name}", include_in_schema=False)
    async def static_file(self, name: str, request: Request) -> Response:
        return storefront.static_file(name, request)

    @operator_app.get("/")
    async def root(self, request: Request) -> Response:
        """The storefront page for a browser (Accept: text/html); the JSON index of links for everyone else."""
        return storefront.front_door(request, self._links())

    def _links(self) -> dict[str, Any]:
        return {
            "name": "vitrine",
            "version": VERSION,
            "links": {
                "search": "/api/v1/search",
                "image_search": "/api/v1/search/image",
                "recommend": "/api/v1/recommend",
                "search_batch": "/api/v1/search/batch",
                "recommend_batch": "/api/v1/recommend/batch",
                "feedback": "/api/v1/feedback",
                "health": "/health",
                "ready": "/ready",
                "status": "/status",
                "metrics": "/metrics",
                "cache_stats": "/cache/stats",
                "performance": "/performance",
                "openapi": "/docs.json",
            },
        }


# @bentoml.service made the class a bentoml Service; mypy still sees the class (a class decorator cannot change
# a type to mypy) and BentoML's Service is untyped, hence Any.
service_definition: Any = Vitrine
install_edge(service_definition, settings, fast_lane=FAST_LANE)  # CORS, keys, limits, in-flight bound, fast lane
serving.trace_only_with_an_exporter()  # OpenTelemetry's middleware only where a span can be exported
