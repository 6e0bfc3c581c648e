"""vitrine: storefront search and personalization, served with BentoML.

    Vitrine (this file, the API service)          blending, caching, enrichment; async handlers
      ├── TextImageEncoder  (runners/encoder.py)   CLIP / MiniLM text and image towers, adaptive batching
      └── VectorIndexService (runners/index.py)    FAISS search with filters, adaptive batching, hot reload

Routes, in the order a client meets them:
    POST /api/v1/search            text query -> products                     domain/search.py
    POST /api/v1/search/image      uploaded image -> products                 domain/search.py
    POST /api/v1/recommend         per-user blend -> products                 domain/recommend.py
    POST /api/v1/feedback          one interaction, stored durably            domain/feedback.py
    POST /api/v1/feedback/batch    up to 500 interactions                     domain/feedback.py
    GET  /health /live /ready /status                                         (operator endpoints below)

Each handler is a few lines: validate (pydantic, at the edge), call the pipeline, map errors (adapters/http_errors.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

import bentoml
from fastapi import FastAPI
from PIL.Image import Image
from runners.index import VectorIndexService
from starlette.responses import JSONResponse, Response

from adapters.components import Components
from adapters.http_errors import error_response, unexpected_error_response
from adapters.metrics import ENDPOINT_REQUESTS, observe_stage
from domain.api_models import (
    FeedbackAnswer,
    FeedbackBatchRequest,
    FeedbackBatchResponse,
    FeedbackRequest,
    RecommendRequest,
    RecommendResponse,
    SearchRequest,
    SearchResponse,
)
from domain.errors import Unsupported, VitrineError
from domain.filters import SearchFilters
from domain.settings import get_settings
from runners.encoder import TextImageEncoder

settings = get_settings()
VERSION = "0.1.0"
RUNNER_CONNECTION = {"max_requests": 1_000_000_000, "max_age": 86400}

operator_app = FastAPI(title="vitrine operator endpoints", docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.service(
    name="vitrine",
    workers=settings.api_workers,
    traffic={"timeout": 30},
    http={"host": settings.api_host, "port": settings.api_port},
)
@bentoml.asgi_app(operator_app, path="/")
class Vitrine:
    encoder = bentoml.depends(TextImageEncoder)
    index = bentoml.depends(VectorIndexService)

    @bentoml.on_startup
    async def start(self) -> None:
        self.components = Components(settings, encoder_runner=self.encoder, index_runner=self.index)
        await self.components.start()

    @bentoml.on_shutdown
    async def stop(self) -> None:
        await self.components.close()

    async def _answer(self, endpoint: str, work: Awaitable[Any]) -> Any:
        """Run one endpoint's work: time it, count it, and turn any failure into a JSON error answer."""
        started = time.perf_counter()
        try:
            result = await work
        except VitrineError as exc:
            ENDPOINT_REQUESTS.labels(endpoint=endpoint, outcome=f"{exc.status_code}").inc()
            return error_response(exc)
        except Exception as exc:
            ENDPOINT_REQUESTS.labels(endpoint=endpoint, outcome="500").inc()
            return unexpected_error_response(exc)
        observe_stage(endpoint, time.perf_counter() - started)
        ENDPOINT_REQUESTS.labels(endpoint=endpoint, outcome="200").inc()
        return result

    # --- search -------------------------------------------------------------------------------------------
    @bentoml.api(route="/api/v1/search")
    async def search(self, request: SearchRequest, /) -> SearchResponse:
        """Products for a text query, most similar first, with optional filters and pagination."""
        return await self._answer("search", self.components.search.search(request))

    @bentoml.api(route="/api/v1/search/image")
    async def search_image(
        self, image: Image, filters: SearchFilters | None = None, limit: int = 20, offset: int = 0
    ) -> SearchResponse:
        """Products that look like an uploaded image (multipart field `image`)."""
        return await self._answer("search_image", self._search_image(image, filters, limit, offset))

    async def _search_image(self, image: Image, filters: SearchFilters | None, limit: int, offset: int) -> Any:
        if not self.components.runners.encoder.get("has_image_tower", False):
            raise Unsupported(
                f"the loaded model ({self.components.runners.model_tag}) has no image tower; "
                "import an open-clip model to search by image",
                field="image",
            )
        return await self.components.search.search_by_image(image, filters=filters, limit=limit, offset=offset)

    # --- personalization ----------------------------------------------------------------------------------
    @bentoml.api(route="/api/v1/recommend")
    async def recommend(self, request: RecommendRequest, /) -> RecommendResponse:
        """Per-user results in four contexts (feed, search, similar, category), with the blend used."""
        return await self._answer("recommend", self.components.recommend.recommend(request))

    @bentoml.api(route="/api/v1/feedback")
    async def feedback(self, event: FeedbackRequest, /) -> FeedbackAnswer:
        """Store one interaction durably, then update the session; a repeated event_id replays the first answer."""
        return await self._answer("feedback", self._feedback(event))

    async def _feedback(self, event: FeedbackRequest) -> Any:
        answer, replayed = await self.components.feedback.accept(event)
        return JSONResponse(answer.model_dump(mode="json"), headers={"Idempotent-Replayed": str(replayed).lower()})

    @bentoml.api(route="/api/v1/feedback/batch")
    async def feedback_batch(self, batch: FeedbackBatchRequest, /) -> FeedbackBatchResponse:
        """Up to 500 interactions, a result per event; one bad event does not sink the others."""
        return await self._answer("feedback_batch", self.components.feedback.accept_batch(batch.events))

    # --- operator endpoints (GET, mounted FastAPI app) ----------------------------------------------------
    @operator_app.get("/health")
    async def health(self) -> dict[str, str]:
        """Cheap: the process answers."""
        return {"status": "ok"}

    @operator_app.get("/live")
    async def live(self) -> dict[str, bool]:
        return {"alive": True}

    @operator_app.get("/ready")
    async def ready(self) -> Response:
        """True once the index and model are loaded and the database answers."""
        state = await self.components.readiness()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    @operator_app.get("/status")
    async def status(self) -> dict[str, Any]:
        """Each dependency's state, versions and latency; `degraded` when an optional one is down."""
        return await self.components.status()

    @operator_app.get("/")
    async def root(self) -> dict[str, Any]:
        return {
            "name": "vitrine",
            "version": VERSION,
            "links": {
                "search": "/api/v1/search",
                "image_search": "/api/v1/search/image",
                "recommend": "/api/v1/recommend",
                "feedback": "/api/v1/feedback",
                "health": "/health",
                "ready": "/ready",
                "status": "/status",
                "metrics": "/metrics",
                "openapi": "/docs.json",
            },
        }
