"""The search pipeline and page assembly (domain/search.py, domain/ranking.py) against plain fakes."""

from __future__ import annotations

import pytest

from domain import cache_keys
from domain.api_models import SearchRequest
from domain.filters import SearchFilters
from domain.search import NO_RESULTS, SearchPipeline
from tests.unit.fakes import FakeCache, FakeCatalog, FakeEncoder, FakeIndex, catalog_rows


def make_pipeline(count: int = 200, **overrides):
    vectors, _prices, rows = catalog_rows(count)
    index, catalog, cache, encoder = FakeIndex(vectors, rows), FakeCatalog(rows), FakeCache(), FakeEncoder()
    pipeline = SearchPipeline(
        encoder=encoder,
        index=index,
        catalog=catalog,
        cache=cache,
        model_tag=lambda: "model:1",
        index_version=lambda: index.version,
        **overrides,
    )
    return pipeline, index, catalog, cache, encoder


async def test_results_come_in_descending_score_with_the_index_total():
    pipeline, _index, *_ = make_pipeline()
    response = await pipeline.search(SearchRequest(query="shoes", limit=10))
    scores = [r.score for r in response.results]
    assert len(scores) == 10 and scores == sorted(scores, reverse=True)
    assert response.total == 200 and response.cached is False


async def test_inactive_products_are_dropped_and_the_page_backfilled():
    pipeline, index, catalog, *_ = make_pipeline()
    full = await pipeline.search(SearchRequest(query="bags", limit=30))
    top_ids = [r.product_id for r in full.results]
    catalog.inactive = set(top_ids[:15])  # more than the slack, so a second, wider index call is needed
    pipeline.cache_enabled = False
    page = await pipeline.search(SearchRequest(query="bags", limit=10))
    ids = [r.product_id for r in page.results]
    assert len(ids) == 10
    assert not set(ids) & catalog.inactive
    assert ids == top_ids[15:25]
    assert index.requested_k[-1] > index.requested_k[-2]


async def test_a_page_reads_the_rows_it_shows_and_one_more_batch_when_some_are_inactive():
    pipeline, index, catalog, *_ = make_pipeline(cache_enabled=False)
    first = await pipeline.search(SearchRequest(query="scarves", limit=10))
    ids = [r.product_id for r in first.results]
    assert catalog.fetched[-1] == ids  # the index's slack costs no product rows
    catalog.fetched.clear()
    catalog.inactive = {ids[2], ids[5]}
    again = await pipeline.search(SearchRequest(query="scarves", limit=10))
    assert [len(batch) for batch in catalog.fetched] == [10, 2]  # the two replacements' rows, read only then
    assert [r.product_id for r in again.results] == [pid for pid in ids if pid not in catalog.inactive] + [
        pid for pid in catalog.fetched[1]
    ]
    assert len(index.requested_k) == 2  # and no second index call


async def test_offset_counts_only_live_products():
    pipeline, _, catalog, *_ = make_pipeline(cache_enabled=False)
    everything = await pipeline.search(SearchRequest(query="coats", limit=30))
    ids = [r.product_id for r in everything.results]
    catalog.inactive = {ids[0]}
    second_page = await pipeline.search(SearchRequest(query="coats", limit=10, offset=10))
    assert [r.product_id for r in second_page.results] == ids[11:21]


async def test_short_page_when_fewer_products_match():
    pipeline, *_ = make_pipeline(cache_enabled=False)
    response = await pipeline.search(
        SearchRequest(query="hat", limit=50, filters=SearchFilters(min_price=10, max_price=12))
    )
    assert response.total == len(response.results) < 50
    assert all(10 <= r.price <= 12 for r in response.results)


async def test_repeat_is_a_cache_hit_that_skips_the_encoder():
    pipeline, _, _, cache, encoder = make_pipeline(cache_ttl=123)
    request = SearchRequest(query="Red  Dress", limit=5)
    first = await pipeline.search(request)
    second = await pipeline.search(SearchRequest(query="red dress", limit=5))
    assert (first.cached, second.cached) == (False, True)
    assert encoder.calls == ["Red  Dress"]
    assert [r.product_id for r in first.results] == [r.product_id for r in second.results]
    assert list(cache.ttls.values()) == [123]


async def test_a_new_index_version_means_new_cache_keys():
    pipeline, index, _, cache, _encoder = make_pipeline()
    await pipeline.search(SearchRequest(query="jeans"))
    index.version = "v2"
    again = await pipeline.search(SearchRequest(query="jeans"))
    assert again.cached is False
    digest = cache_keys.search_results(
        model="model:1", index="v1", mode="vector", query="jeans", filters="", limit=20, offset=0
    ).rsplit(":", 1)[1]
    assert sorted(cache.values) == [f"vitrine:search:model:1:{version}:{digest}" for version in ("v1", "v2")]


async def test_a_page_reports_and_is_cached_under_the_version_that_answered_it():
    # During a rollout the API may have seen v2 on one index replica while this search is answered by one still
    # on v1: the page is v1's, says so, and is cached under v1, never filed as v2's.
    pipeline, index, _, cache, _encoder = make_pipeline()
    pipeline.index_version = lambda: "v2"
    response = await pipeline.search(SearchRequest(query="jeans"))
    assert response.index_version == "v1"
    [key] = cache.values
    assert ":v1:" in key and ":v2:" not in key
    index.version = "v2"
    newer = await pipeline.search(SearchRequest(query="jeans"))
    assert newer.index_version == "v2" and newer.cached is False


async def test_empty_result_says_so():
    pipeline, *_ = make_pipeline(cache_enabled=False)
    response = await pipeline.search(SearchRequest(query="x", filters=SearchFilters(min_price=5000)))
    assert response.results == [] and response.total == 0
    assert response.message == NO_RESULTS == "No products match this search."


@pytest.mark.parametrize("bad", [{"query": ""}, {"query": "a", "limit": 0}, {"query": "a", "offset": 1001}])
def test_request_validation(bad):
    with pytest.raises(ValueError):
        SearchRequest.model_validate(bad)


def test_filter_cache_token_ignores_list_order():
    a = SearchFilters(brands=["Nike", "Puma"], min_price=10)
    b = SearchFilters(min_price=10, brands=["Puma", "Nike"])
    assert a.cache_token() == b.cache_token()
    assert a.cache_token() != SearchFilters(brands=["Nike"], min_price=10).cache_token()
