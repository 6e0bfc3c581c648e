"""THE BASELINE, NOT VITRINE: the seed's plain pipeline, for the side-by-side load runs only.

    uvicorn loadtests.baseline:app --workers 1      # reads DATABASE_URL, FAISS_INDEX_PATH, ML_MODEL_VERSION

One process, one FastAPI app, POST /api/v1/search only. Each query is encoded as it arrives, a batch of one
(no batching across requests), searched in the same index files vitrine serves (runners/vector_index.py) and
enriched from the same PostgreSQL catalog with the same query (adapters/db/products.py). No cache, no query
understanding, no runners, no HTTP hops. The model is loaded with the same loader (runners/encoder_model.py),
torch on every core the process may use.

Encoding runs in a worker thread so the event loop keeps serving; BASELINE_ENCODE_THREADS bounds how many
encode at once (default 1: one query at a time on all of torch's threads, as a plain handler would; more
would share the same cores; not compared here). The load report states the setting it ran with.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from adapters.db.engine import create_engine
from adapters.db.products import fetch_products
from domain.filters import SearchFilters
from domain.products import product_result
from domain.settings import get_settings

STATE: dict[str, Any] = {}


class Query(BaseModel):
    query: str = Field(min_length=1, max_length=512)
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1000)
    filters: SearchFilters | None = None
    mode: str | None = None  # accepted for the load client's sake; always a vector search


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    from runners.encoder_model import load_encoder
    from runners.vector_index import VectorIndex

    settings = get_settings()
    STATE["encoder"] = load_encoder(device="cpu")
    STATE["encoder"].encode_text(["warm up"])
    STATE["index"] = VectorIndex.load_current(settings.resolved_index_path)
    STATE["index"].warm()
    STATE["engine"] = create_engine(settings)
    STATE["encode_slots"] = anyio.CapacityLimiter(int(os.environ.get("BASELINE_ENCODE_THREADS", "1")))
    yield
    await STATE["engine"].dispose()


app = FastAPI(title="baseline (not vitrine)", lifespan=lifespan)


@app.get("/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


@app.post("/api/v1/search")
async def search(request: Query) -> JSONResponse:
    started = time.perf_counter()
    vector = await anyio.to_thread.run_sync(
        STATE["encoder"].encode_text, [request.query], limiter=STATE["encode_slots"]
    )
    hits = STATE["index"].search(np.asarray(vector[0]), k=request.offset + request.limit, filters=request.filters)
    ids = [int(pid) for pid in hits.ids[request.offset :]]
    rows = await fetch_products(STATE["engine"], ids)
    results = [
        product_result(rows[pid], score=float(score)).model_dump(mode="json")
        for pid, score in zip(ids, hits.scores[request.offset :].tolist(), strict=True)
        if pid in rows
    ]
    return JSONResponse(
        {
            "query": request.query,
            "results": results,
            "total": hits.total,
            "limit": request.limit,
            "offset": request.offset,
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
            "cached": False,
        }
    )
