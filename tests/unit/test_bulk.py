"""The bulk endpoints' logic without a server: items in order with their own errors, runner asks gathered."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from adapters.bulk import GatheredEncoder, GatheredIndex
from adapters.coalesce import Coalescer
from domain import bulk
from domain.api_models import SearchRequest
from domain.errors import DependencyDown, InvalidRequest
from tests.unit.test_search_pipeline import make_pipeline


class CountingBatcher:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(items)
        await asyncio.sleep(0)
        return [ValueError(f"odd {n}") if n == 13 else n * 10 for n in items]


async def test_concurrent_calls_leave_as_one_batch_and_get_their_own_answers():
    batcher = CountingBatcher()
    coalesce: Coalescer[int, int] = Coalescer(batcher)

    async def late(n: int) -> int:
        await asyncio.sleep(0.001 * (n % 3))  # arrivals spread over a few ms, as pipelines reach the runner
        return await coalesce(n)

    answers = await asyncio.gather(*(late(n) for n in range(12)))
    assert answers == [n * 10 for n in range(12)]
    assert len(batcher.batches) == 1 and sorted(batcher.batches[0]) == list(range(12))


async def test_an_exception_result_reaches_only_its_caller_and_a_failed_batch_reaches_all():
    coalesce: Coalescer[int, int] = Coalescer(CountingBatcher())
    results = await asyncio.gather(coalesce(12), coalesce(13), return_exceptions=True)
    assert results[0] == 120 and isinstance(results[1], ValueError)

    async def down(items: list[int]) -> list[int | Exception]:
        raise DependencyDown("index", "refused")

    failing: Coalescer[int, int] = Coalescer(down)
    results = await asyncio.gather(failing(1), failing(2), return_exceptions=True)
    assert all(isinstance(result, DependencyDown) for result in results)


async def test_max_batch_splits_a_long_list_into_lists_sent_one_after_another():
    batcher = CountingBatcher()
    in_flight, peak = 0, 0

    async def one_list(items: list[int]) -> list[int | Exception]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return await batcher(items)

    coalesce: Coalescer[int, int] = Coalescer(one_list, max_batch=5)
    assert await asyncio.gather(*(coalesce(n) for n in range(12))) == [n * 10 for n in range(12)]
    assert [len(batch) for batch in batcher.batches] == [5, 5, 2]
    assert peak == 1  # BentoML would shed a list queued behind another past the runner's deadline


class BatchEncoderClient:
    def __init__(self, encoder) -> None:  # type: ignore[no-untyped-def]
        self.encoder = encoder
        self.calls: list[list[str]] = []

    async def encode_texts(self, texts: list[str]) -> list[np.ndarray]:
        self.calls.append(texts)
        return [await self.encoder.encode_text(text) for text in texts]


class BatchIndexClient:
    def __init__(self, index) -> None:  # type: ignore[no-untyped-def]
        self.index = index
        self.calls = 0

    async def search_many(self, queries):  # type: ignore[no-untyped-def]
        self.calls += 1
        return [await self.index.search(vector, k=k, filters=filters) for vector, k, filters in queries]


async def test_search_batch_matches_single_searches_with_one_encoder_and_one_index_call():
    pipeline, *_ = make_pipeline(count=300)
    single = [await pipeline.search(SearchRequest(query=f"query {n}", limit=5)) for n in range(8)]
    fresh, index, _catalog, _cache, encoder = make_pipeline(count=300)
    encoder_client, index_client = BatchEncoderClient(encoder), BatchIndexClient(index)
    gathered = dataclasses.replace(
        fresh,
        encoder=GatheredEncoder(encoder_client, max_batch=32),  # type: ignore[arg-type]
        index=GatheredIndex(index_client, max_batch=64),  # type: ignore[arg-type]
    )
    raw = [{"query": f"query {n}", "limit": 5} for n in range(8)] + [{"query": ""}, {"query": "x", "limit": 0}]
    answer = await bulk.search_batch(bulk.SearchBatchRequest(queries=raw), gathered.search)
    assert [item.index for item in answer.results] == list(range(10))
    assert [item.status_code for item in answer.results] == [200] * 8 + [400, 400]
    assert [item.error["field"] for item in answer.results[8:]] == ["query", "limit"]  # type: ignore[index]
    for expected, item in zip(single, answer.results, strict=False):
        assert item.result is not None
        assert [r.product_id for r in item.result.results] == [r.product_id for r in expected.results]
    assert len(encoder_client.calls) == 1 and len(encoder_client.calls[0]) == 8
    assert index_client.calls == 1


async def test_a_dependency_down_fails_the_whole_batch():
    async def down(request: SearchRequest):  # type: ignore[no-untyped-def]
        raise DependencyDown("encoder", "connection refused")

    with pytest.raises(DependencyDown):
        await bulk.search_batch(bulk.SearchBatchRequest(queries=[{"query": "a"}, {"query": "b"}]), down)


async def test_other_errors_stay_with_their_item():
    async def refuse(request: SearchRequest):  # type: ignore[no-untyped-def]
        if request.query == "bad":
            raise InvalidRequest("refused", field="query")
        return await make_pipeline(count=50)[0].search(request)

    answer = await bulk.search_batch(bulk.SearchBatchRequest(queries=[{"query": "bad"}, {"query": "ok"}]), refuse)
    assert [item.status_code for item in answer.results] == [400, 200]


async def test_items_in_flight_are_bounded(monkeypatch):
    monkeypatch.setattr(bulk, "IN_FLIGHT", 3)
    running, peak = 0, 0

    async def slow(request: SearchRequest):  # type: ignore[no-untyped-def]
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return await make_pipeline(count=20)[0].search(request)

    raw = [{"query": f"q{n}"} for n in range(10)]
    answer = await bulk.search_batch(bulk.SearchBatchRequest(queries=raw), slow)
    assert [item.status_code for item in answer.results] == [200] * 10 and peak == 3


async def test_an_index_in_the_api_process_is_searched_directly():
    _pipeline, index, *_ = make_pipeline(count=30)
    gathered = GatheredIndex(index, max_batch=64)  # FakeIndex has no search_many, as an in-process index
    hits = await gathered.search(np.ones(8, dtype=np.float32), k=3, filters=None)
    assert len(hits.ids) == 3 and gathered.searches is None
