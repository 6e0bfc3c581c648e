"""Bulk search and recommend, for offline jobs (e-mail campaigns, feed precomputation).

    POST /api/v1/search/batch      {"queries": [<search request>, ...]}      up to 100
    POST /api/v1/recommend/batch   {"requests": [<recommend request>, ...]}  up to 500
    -> {"results": [{"index", "status_code", "result", "error"}, ...]}        in request order

Each item is exactly what the single endpoint takes and answers (`result` is its response body, `error` its
error body naming the field), shaped like `/api/v1/feedback/batch`'s items: one bad item is its own 400 or
404 and does not sink the others. A dependency that is down fails the whole batch (503, retryable), as it
would fail every item anyway.

The items run concurrently through the ordinary pipelines; what makes the batch cheaper than N requests is
the wiring (adapters/bulk.py): their encoder and index asks are gathered into one runner call each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.api_models import RecommendRequest, RecommendResponse, SearchRequest, SearchResponse
from domain.errors import DependencyDown, VitrineError
from domain.feedback import validation_error_body

MAX_SEARCHES = 100
MAX_RECOMMENDATIONS = 500
# Items in flight at once: bounds the Redis connections and database pool waits one batch takes. A batch of up
# to this many items leaves as one runner call per kind; a 500-request batch as about five.
IN_FLIGHT = 100

Request = TypeVar("Request", bound=BaseModel)
Answer = TypeVar("Answer", bound=BaseModel)


class SearchBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Items are validated one by one, so one bad query does not sink the others.
    queries: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_SEARCHES)


class RecommendBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_RECOMMENDATIONS)


class SearchBatchItem(BaseModel):
    index: int
    status_code: int
    result: SearchResponse | None = None
    error: dict[str, Any] | None = None


class RecommendBatchItem(BaseModel):
    index: int
    status_code: int
    result: RecommendResponse | None = None
    error: dict[str, Any] | None = None


class SearchBatchResponse(BaseModel):
    results: list[SearchBatchItem]


class RecommendBatchResponse(BaseModel):
    results: list[RecommendBatchItem]


@dataclass(frozen=True)
class _Outcome(Generic[Answer]):
    status_code: int
    result: Answer | None = None
    error: dict[str, Any] | None = None
    down: DependencyDown | None = None


async def run_items(
    items: list[dict[str, Any]],
    parse: Callable[[dict[str, Any]], Request],
    answer: Callable[[Request], Awaitable[Answer]],
) -> list[tuple[int, Answer | None, dict[str, Any] | None]]:
    """Each raw item parsed and answered, IN_FLIGHT at a time; (status_code, result, error) per item, in order.

    Raises the first DependencyDown: the batch as a whole is then a 503 the client retries."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(raw: dict[str, Any]) -> _Outcome[Answer]:
        try:
            request = parse(raw)
        except ValidationError as exc:
            return _Outcome(400, error=validation_error_body(exc))
        try:
            async with gate:
                return _Outcome(200, result=await answer(request))
        except DependencyDown as exc:
            return _Outcome(exc.status_code, down=exc)
        except VitrineError as exc:
            return _Outcome(exc.status_code, error=exc.to_body())

    outcomes = await asyncio.gather(*(one(raw) for raw in items))
    for outcome in outcomes:
        if outcome.down is not None:
            raise outcome.down
    return [(outcome.status_code, outcome.result, outcome.error) for outcome in outcomes]


async def search_batch(
    batch: SearchBatchRequest, answer: Callable[[SearchRequest], Awaitable[SearchResponse]]
) -> SearchBatchResponse:
    done = await run_items(batch.queries, SearchRequest.model_validate, answer)
    return SearchBatchResponse(
        results=[
            SearchBatchItem(index=i, status_code=code, result=result, error=error)
            for i, (code, result, error) in enumerate(done)
        ]
    )


async def recommend_batch(
    batch: RecommendBatchRequest, answer: Callable[[RecommendRequest], Awaitable[RecommendResponse]]
) -> RecommendBatchResponse:
    done = await run_items(batch.requests, RecommendRequest.model_validate, answer)
    return RecommendBatchResponse(
        results=[
            RecommendBatchItem(index=i, status_code=code, result=result, error=error)
            for i, (code, result, error) in enumerate(done)
        ]
    )
