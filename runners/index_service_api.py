"""What travels between the API service and the index service (runners/index_service.py): pydantic, no faiss.

`search` is a batchable BentoML API, so every call carries a list of queries and gets back a list of results,
in the same order; BentoML merges concurrent calls into one batch and splits the answers again.

    request   {"queries": [{"vector": [0.01, ...], "k": 20, "filters": {"max_price": 50, "brands": ["Nike"]}}]}
    response  [{"ids": [40026645008, ...], "scores": [0.83, ...], "total": 1234, "index_version": "...",
                "error": null}]

`vector` need not be normalised (the index normalises a copy) but must have the index's dimension. `total`
counts the products matching the filters (the whole index when there are none). One query the index cannot
answer (a wrong dimension) gets `error` set and empty ids instead of failing the other callers in its batch.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from domain.filters import SearchFilters

MAX_K = 1000


class IndexQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    vector: list[float] = Field(min_length=1, max_length=8192)
    k: int = Field(10, ge=1, le=MAX_K)
    filters: SearchFilters | None = None


class IndexResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ids: list[int]
    scores: list[float]
    total: int
    index_version: str
    error: str | None = None
