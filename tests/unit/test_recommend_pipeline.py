"""The recommend pipeline (domain/recommend.py) against plain fakes: cold start, purchases left out, filters."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from domain.api_models import RecommendRequest
from domain.blending import RecommendContext
from domain.errors import NotFound
from domain.filters import SearchFilters
from domain.interactions import InteractionType
from domain.profile import StoredInteraction
from domain.recommend import RecommendPipeline
from tests import filter_cases
from tests.unit.fakes import (
    FakeCache,
    FakeCatalog,
    FakeEncoder,
    FakeIndex,
    FakeInteractions,
    FakeUserState,
    FakeVectors,
    catalog_rows,
)

USER, OTHER = 7, 8


def make_pipeline(
    rows: dict[int, dict[str, Any]] | None = None,
    *,
    events: dict[int, list[StoredInteraction]] | None = None,
    best: list[int] | None = None,
    cache_enabled: bool = False,
) -> tuple[RecommendPipeline, FakeUserState, FakeIndex, FakeCache]:
    vectors, _prices, generated = catalog_rows(40)
    if rows is not None:  # other rows, each with a generated vector
        vectors = {pid: vectors[n + 1] for n, pid in enumerate(rows)}
        generated = rows
    index, state, cache = FakeIndex(vectors, generated), FakeUserState(), FakeCache()
    best_ids = best if best is not None else sorted(generated)

    async def best_products(limit: int) -> list[int]:
        return best_ids[:limit]

    pipeline = RecommendPipeline(
        encoder=FakeEncoder(),
        index=index,
        vectors=FakeVectors(vectors),
        catalog=FakeCatalog(generated),
        profiles=state,
        sessions=state,
        interactions=FakeInteractions(events),
        versions=state,
        best_products=best_products,
        cache=cache,
        model_tag=lambda: "model:1",
        index_version=lambda: index.version,
        cache_enabled=cache_enabled,
    )
    return pipeline, state, index, cache


def event(product_id: int, kind: InteractionType, *, ago_s: float = 60.0) -> StoredInteraction:
    return StoredInteraction(product_id=product_id, interaction_type=kind, occurred_at=time.time() - ago_s)


def ids(response: Any) -> list[int]:
    return [result.product_id for result in response.results]


# --- cold start ---------------------------------------------------------------------------------------------


async def test_a_stranger_with_no_traffic_gets_the_best_products_in_order():
    pipeline, *_ = make_pipeline(best=[5, 3, 9, 1, 2])
    response = await pipeline.recommend(RecommendRequest(user_id=USER, limit=3))
    assert response.strategy == "cold_start"
    assert (response.blend_weights, response.components) == ({}, [])
    assert ids(response) == [5, 3, 9] and response.total == 5


async def test_cold_start_puts_what_is_popular_now_first_then_the_best_products():
    events = {
        OTHER: [event(12, InteractionType.VIEW), event(30, InteractionType.PURCHASE), event(12, InteractionType.VIEW)],
    }
    pipeline, *_ = make_pipeline(events=events, best=[1, 12, 2])
    response = await pipeline.recommend(RecommendRequest(user_id=USER, limit=5))
    # A purchase (1.0) outweighs two views (0.1 each); the best products follow, without repeating 12.
    assert ids(response) == [30, 12, 1, 2]
    assert response.total == 4
    assert response.results[0].score > response.results[1].score > 0 and response.results[2].score == 0


async def test_cold_start_pages_with_offset():
    pipeline, *_ = make_pipeline(best=list(range(1, 21)))
    response = await pipeline.recommend(RecommendRequest(user_id=USER, limit=5, offset=10))
    assert ids(response) == [11, 12, 13, 14, 15] and response.total == 20


async def test_after_the_ranking_a_stranger_costs_the_rows_of_a_page_and_sees_them_as_they_are_now():
    pipeline, *_ = make_pipeline(best=list(range(1, 31)))
    catalog: Any = pipeline.catalog
    await pipeline.recommend(RecommendRequest(user_id=USER, limit=5))  # ranks the pool: all 30 rows read once
    catalog.fetched.clear()
    catalog.inactive.add(2)  # withdrawn since the ranking
    response = await pipeline.recommend(RecommendRequest(user_id=OTHER, limit=5))
    assert ids(response) == [1, 3, 4, 5, 6]  # 2 skipped, the next one shown in its place
    assert catalog.fetched == [[1, 2, 3, 4, 5], [6]]
    priced = await pipeline.recommend(RecommendRequest(user_id=OTHER, limit=5, filters=SearchFilters(max_price=1e9)))
    assert len(priced.results) == 5 and priced.total == 30  # the filters see the rows as ranked


# --- purchases ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("context", [RecommendContext.FEED, RecommendContext.CATEGORY])
async def test_purchased_products_are_left_out_of_personal_feed_and_category(context: RecommendContext):
    pipeline, state, *_ = make_pipeline(events={USER: [event(4, InteractionType.PURCHASE)]})
    for row in pipeline.catalog.rows.values():  # type: ignore[attr-defined]
        row["category_name"] = "Shoes"
    state.profiles[USER] = (await pipeline.vectors.vectors([4]))[4]  # the purchase would be the best match
    request = RecommendRequest(user_id=USER, context=context, category="Shoes" if context == "category" else None)
    response = await pipeline.recommend(request)
    assert response.strategy == "personalized"
    assert 4 not in ids(response) and len(response.results) == 20


async def test_purchased_products_are_left_out_of_the_cold_start_feed():
    pipeline, *_ = make_pipeline(events={USER: [event(2, InteractionType.PURCHASE)]}, best=[1, 2, 3])
    response = await pipeline.recommend(RecommendRequest(user_id=USER))
    assert response.strategy == "cold_start"
    assert ids(response) == [1, 3]


async def test_a_search_may_return_what_was_bought_and_similar_never_returns_its_own_product():
    pipeline, state, *_ = make_pipeline(events={USER: [event(4, InteractionType.PURCHASE)]})
    vector_4 = (await pipeline.vectors.vectors([4]))[4]
    state.profiles[USER] = vector_4
    pipeline.encoder.encode_text = lambda text: _returning(vector_4)  # type: ignore[method-assign]
    searched = await pipeline.recommend(RecommendRequest(user_id=USER, context="search", query="boots"))
    assert searched.blend_weights == {"query": 0.7, "long_term": 0.3}
    assert ids(searched)[0] == 4

    similar = await pipeline.recommend(RecommendRequest(user_id=OTHER, context="similar", product_id=4))
    assert similar.blend_weights == {"product": 1.0}
    assert 4 not in ids(similar) and len(similar.results) == 20


async def _returning(vector: np.ndarray) -> np.ndarray:
    return vector


async def test_similar_to_an_unknown_product_is_a_404_naming_the_field():
    pipeline, *_ = make_pipeline()
    with pytest.raises(NotFound) as refused:
        await pipeline.recommend(RecommendRequest(user_id=USER, context="similar", product_id=999_999))
    assert refused.value.field == "product_id"


# --- blending -------------------------------------------------------------------------------------------------


async def test_feed_blends_profile_and_session_and_uses_whichever_exists():
    pipeline, state, *_ = make_pipeline()
    vectors = await pipeline.vectors.vectors([1, 2])
    state.sessions[USER] = vectors[1]
    session_only = await pipeline.recommend(RecommendRequest(user_id=USER))
    assert (session_only.strategy, session_only.blend_weights) == ("personalized", {"session": 1.0})
    assert ids(session_only)[0] == 1
    state.profiles[USER] = vectors[2]
    both = await pipeline.recommend(RecommendRequest(user_id=USER))
    assert both.blend_weights == {"long_term": 0.6, "session": 0.4}


# --- filters --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", filter_cases.CASES, ids=str)
async def test_the_filter_table_on_cold_start(case: filter_cases.FilterCase):
    rows = {row["id"]: row for row in filter_cases.catalog()}
    pipeline, *_ = make_pipeline(rows, best=sorted(rows))
    request = RecommendRequest.model_validate({"user_id": USER, "limit": 100, "filters": case.filters})
    response = await pipeline.recommend(request)
    assert response.strategy == "cold_start"
    assert (set(ids(response)), response.total) == (case.expected, len(case.expected))


@pytest.mark.parametrize("case", filter_cases.CASES, ids=str)
async def test_the_filter_table_on_personal_results(case: filter_cases.FilterCase):
    rows = {row["id"]: row for row in filter_cases.catalog()}
    pipeline, state, *_ = make_pipeline(rows)
    state.profiles[USER] = (await pipeline.vectors.vectors([1]))[1]
    request = RecommendRequest.model_validate({"user_id": USER, "limit": 100, "filters": case.filters})
    response = await pipeline.recommend(request)
    assert response.strategy == "personalized"
    assert (set(ids(response)), response.total) == (case.expected, len(case.expected))


async def test_the_category_context_narrows_the_request_filters_to_its_category():
    rows = {row["id"]: row for row in filter_cases.catalog()}
    pipeline, state, *_ = make_pipeline(rows, best=sorted(rows))
    request = RecommendRequest(
        user_id=USER, context="category", category="Shoes", filters=SearchFilters(in_stock=True), limit=100
    )
    cold = await pipeline.recommend(request)
    assert (cold.strategy, set(ids(cold))) == ("cold_start", {1, 3, 6})
    state.profiles[USER] = (await pipeline.vectors.vectors([2]))[2]
    personal = await pipeline.recommend(request)
    assert (personal.strategy, set(ids(personal))) == ("personalized", {1, 3, 6})


# --- caching --------------------------------------------------------------------------------------------------


async def test_answers_are_cached_per_user_until_the_users_version_moves():
    pipeline, state, _index, cache = make_pipeline(cache_enabled=True)
    first = await pipeline.recommend(RecommendRequest(user_id=USER, limit=5))
    again = await pipeline.recommend(RecommendRequest(user_id=USER, limit=5))
    assert (first.cached, again.cached) == (False, True)
    assert ids(first) == ids(again) and list(cache.ttls.values()) == [120]
    await state.bump(USER)
    assert (await pipeline.recommend(RecommendRequest(user_id=USER, limit=5))).cached is False
    assert len(cache.values) == 2
