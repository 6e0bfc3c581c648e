"""Fusing ranked lists (domain/fusion.py): linear fusion of normalised scores, and reciprocal rank fusion."""

from __future__ import annotations

import asyncio

import pytest

from domain.fusion import Ranked, linear_fusion, reciprocal_rank_fusion


def test_linear_fusion_orders_equal_keyword_matches_by_the_vector_leg():
    keyword = Ranked([1, 2, 3, 4], weight=1.0, scores=[6.0, 6.0, 6.0, 3.0], normalise="max")
    vector = Ranked([3, 9, 2, 1], weight=0.35, scores=[0.80, 0.75, 0.70, 0.60], normalise="minmax")
    fused = linear_fusion([keyword, vector])
    # 1, 2, 3 match the words equally well: the vector leg decides among them; 4 matches half as well.
    assert fused.ids == [3, 2, 1, 4, 9]
    assert fused.scores == pytest.approx([1.35, 1.0 + 0.35 * 0.5, 1.0, 0.5, 0.35 * 0.75])
    assert fused.scores == sorted(fused.scores, reverse=True)


def test_linear_fusion_never_lifts_a_miss_above_a_clear_match():
    keyword = Ranked([1], scores=[2.0], normalise="max")
    vector = Ranked([7, 1], weight=0.35, scores=[0.9, 0.1], normalise="minmax")
    assert linear_fusion([keyword, vector]).ids == [1, 7]


def test_an_empty_leg_leaves_the_other_one_as_it_was():
    vector = Ranked([5, 6, 7], weight=0.35, scores=[0.9, 0.5, 0.4], normalise="minmax")
    fused = linear_fusion([Ranked([], scores=[], normalise="max"), vector])
    assert fused.ids == [5, 6, 7]
    assert fused.scores == pytest.approx([0.35, 0.35 * 0.2, 0.0])


def test_scaling():
    assert Ranked([1, 2], scores=[4.0, 1.0], normalise="max").scaled() == [1.0, 0.25]
    assert Ranked([1, 2, 3], scores=[0.9, 0.6, 0.5], normalise="minmax").scaled() == pytest.approx([1, 0.25, 0])
    assert Ranked([1, 2], scores=[0.5, 0.5], normalise="minmax").scaled() == [1.0, 1.0]
    assert Ranked([1, 2]).scaled() == [1.0, 1.0]


def test_ties_break_by_best_rank_then_list_then_id():
    a = Ranked([10, 20], scores=[1.0, 1.0], normalise="max")
    b = Ranked([30, 10], scores=[1.0, 0.0], normalise="max")
    fused = linear_fusion([a, b])
    # All three score 1.0; 10 and 30 are first in a list (10 in the earlier one), 20 only second.
    assert fused.ids == [10, 30, 20]
    c = Ranked([40, 50], scores=[1.0, 1.0], normalise="max")
    assert linear_fusion([c, Ranked([50, 40], scores=[1.0, 1.0], normalise="max")]).ids == [40, 50]


def test_rrf_rewards_agreement():
    fused = reciprocal_rank_fusion([Ranked([1, 2, 3]), Ranked([3, 4, 1])], k=60)
    assert fused.ids[:2] == [1, 3]
    assert fused.scores[0] == pytest.approx(1 / 61 + 1 / 63)


def test_rrf_ties_share_a_rank():
    assert Ranked([1, 2, 3, 4, 5], scores=[9, 7, 7, 7, 1]).ranks() == [1, 2, 2, 2, 5]
    keyword = Ranked([1, 2, 3], scores=[5.0, 5.0, 5.0])
    vector = Ranked([3, 2, 1])
    assert reciprocal_rank_fusion([keyword, vector], k=10).ids == [3, 2, 1]


def test_a_repeated_id_counts_once():
    fused = reciprocal_rank_fusion([Ranked([1, 1, 2])], k=0)
    assert fused.ids == [1, 2] and fused.scores == pytest.approx([1.0, 1 / 3])


@pytest.mark.parametrize(
    "bad",
    [lambda: Ranked([1], weight=-1), lambda: Ranked([1, 2], scores=[1.0]), lambda: reciprocal_rank_fusion([], k=-1)],
)
def test_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        bad()


# --- fusion inside the search pipeline (domain/search.py), against fakes ------------------------------------

from domain.api_models import SearchRequest  # noqa: E402
from domain.errors import DependencyDown, Unsupported  # noqa: E402
from domain.filters import SearchFilters  # noqa: E402
from domain.lexical import KeywordHits, KeywordQuery, Vocabulary  # noqa: E402
from domain.search import SearchPipeline  # noqa: E402
from tests.unit.fakes import FakeCache, FakeCatalog, FakeEncoder, FakeIndex, catalog_rows  # noqa: E402


class FakeKeywords:
    """Products whose name contains a form of any admitting group, scored by how many groups they match."""

    def __init__(self, rows: dict[int, dict], prices: dict[int, float]) -> None:
        self.rows, self.prices = rows, prices
        self.queries: list[tuple[KeywordQuery, SearchFilters | None]] = []
        self.vocabulary_calls = 0

    async def search(self, query: KeywordQuery, *, k: int, filters: SearchFilters | None) -> KeywordHits:
        self.queries.append((query, filters))
        scored = []
        for pid, row in self.rows.items():
            if filters and not filters.admits(row):
                continue
            words = row["product_name"].lower().split()
            if not any(form in words for group in query.admitting for form in group.forms):
                continue
            scored.append((sum(any(f in words for f in g.forms) for g in query.groups), pid))
        scored.sort(key=lambda item: (-item[0], item[1]))
        return KeywordHits(ids=[p for _, p in scored[:k]], scores=[float(s) for s, _ in scored[:k]], total=len(scored))

    async def vocabulary(self) -> Vocabulary:
        self.vocabulary_calls += 1
        words = {word: 1 for row in self.rows.values() for word in row["product_name"].lower().split()}
        return Vocabulary(words=words, colours=("Red",), documents=len(self.rows))


def hybrid_pipeline(**overrides):
    vectors, prices, rows = catalog_rows(60)
    for pid in (7, 8, 9):
        rows[pid] = {**rows[pid], "product_name": f"Red Jacket {pid}"}
    index, catalog, cache, encoder = FakeIndex(vectors, rows), FakeCatalog(rows), FakeCache(), FakeEncoder()
    keywords = FakeKeywords(rows, prices)
    pipeline = SearchPipeline(
        encoder=encoder,
        index=index,
        catalog=catalog,
        cache=cache,
        model_tag=lambda: "model:1",
        index_version=lambda: index.version,
        keywords=keywords,
        **overrides,
    )
    return pipeline, keywords, cache, encoder


async def test_hybrid_is_the_default_and_puts_keyword_matches_first():
    pipeline, keywords, _cache, _encoder = hybrid_pipeline()
    response = await pipeline.search(SearchRequest(query="jacket", limit=10))
    assert response.mode == "hybrid"
    assert {r.product_id for r in response.results[:3]} == {7, 8, 9}
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True) and all(isinstance(s, float) for s in scores)
    assert response.total == 60  # every product matches no filters
    assert len(keywords.queries) == 1


async def test_keyword_mode_skips_the_encoder_and_counts_only_matches():
    pipeline, _keywords, _cache, encoder = hybrid_pipeline()
    response = await pipeline.search(SearchRequest(query="jacket", mode="keyword"))
    assert response.mode == "keyword" and encoder.calls == []
    assert [r.product_id for r in response.results] == [7, 8, 9] and response.total == 3


async def test_vector_mode_leaves_the_keyword_leg_alone():
    pipeline, keywords, *_ = hybrid_pipeline()
    response = await pipeline.search(SearchRequest(query="jacket", mode="vector", limit=5))
    assert response.mode == "vector" and keywords.queries == [] and len(response.results) == 5


async def test_mode_is_part_of_the_cache_key_and_default_equals_hybrid():
    pipeline, _keywords, cache, _encoder = hybrid_pipeline()
    for mode in (None, "hybrid", "vector", "keyword"):
        await pipeline.search(SearchRequest(query="jacket", mode=mode))
    assert len(cache.values) == 3
    again = await pipeline.search(SearchRequest(query="Jacket", mode="hybrid"))
    assert again.cached is True and again.mode == "hybrid"


async def test_price_in_the_words_filters_both_legs_and_is_reported():
    pipeline, keywords, *_ = hybrid_pipeline(cache_enabled=False)
    response = await pipeline.search(SearchRequest(query="red jacket under 20", limit=50))
    assert response.interpretation is not None
    assert response.interpretation.applied_filters == {"max_price": 20.0, "colour": ["Red"]}
    assert all(r.price is not None and r.price <= 20 for r in response.results)
    assert keywords.queries[-1][1] == SearchFilters(max_price=20)


async def test_closest_products_when_the_words_match_nothing_within_the_price():
    pipeline, *_ = hybrid_pipeline(cache_enabled=False)
    response = await pipeline.search(SearchRequest(query="jacket under 15", limit=5))  # jackets cost 17-19
    assert response.results and all(r.price is not None and r.price <= 15 for r in response.results)
    assert response.message == (
        "No product matches the words of this search with the price taken from its words (max_price 15); "
        "these are the closest products."
    )


async def test_a_colour_nowhere_on_the_page_is_said_so():
    pipeline, *_ = hybrid_pipeline(cache_enabled=False)
    response = await pipeline.search(SearchRequest(query="red jacket", limit=5))
    assert response.results and response.message is not None and "Nothing in Red" in response.message
    vector = await pipeline.search(SearchRequest(query="red jacket", mode="vector", limit=5))
    assert vector.interpretation is None  # the vector leg has no colour to filter on: nothing is claimed


async def test_spelling_correction_is_reported_and_used():
    pipeline, _keywords, _cache, encoder = hybrid_pipeline(cache_enabled=False)
    response = await pipeline.search(SearchRequest(query="jakcet", mode="keyword"))
    assert response.interpretation is not None and response.interpretation.corrected_query == "jacket"
    assert [r.product_id for r in response.results] == [7, 8, 9]
    await pipeline.search(SearchRequest(query="jakcet", mode="vector"))
    assert encoder.calls == ["jacket"]


async def test_nothing_understood_means_no_interpretation():
    pipeline, *_ = hybrid_pipeline(cache_enabled=False)
    assert (await pipeline.search(SearchRequest(query="jacket"))).interpretation is None


async def test_keyword_mode_with_unknown_words_says_so():
    pipeline, *_ = hybrid_pipeline(cache_enabled=False)
    response = await pipeline.search(SearchRequest(query="zzzz qqqq", mode="keyword"))
    assert response.results == [] and response.total == 0
    assert response.message and "none of its words" in response.message


async def test_without_a_keyword_leg_search_is_vector_only():
    vectors, _prices, rows = catalog_rows(20)
    index = FakeIndex(vectors, rows)
    pipeline = SearchPipeline(
        encoder=FakeEncoder(),
        index=index,
        catalog=FakeCatalog(rows),
        cache=FakeCache(),
        model_tag=lambda: "m",
        index_version=lambda: index.version,
    )
    assert (await pipeline.search(SearchRequest(query="jacket"))).mode == "vector"
    with pytest.raises(Unsupported):
        await pipeline.search(SearchRequest(query="jacket", mode="keyword"))


async def test_the_keyword_leg_runs_while_the_query_is_encoded():
    pipeline, keywords, _cache, _encoder = hybrid_pipeline(cache_enabled=False)
    release = asyncio.Event()
    seen_while_encoding: list[int] = []

    class SlowEncoder(FakeEncoder):
        async def encode_text(self, text: str):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0)  # let the keyword task start
            await asyncio.sleep(0)
            seen_while_encoding.append(len(keywords.queries))
            release.set()
            return await super().encode_text(text)

    pipeline.encoder = SlowEncoder()
    response = await pipeline.search(SearchRequest(query="jacket", limit=5))
    assert release.is_set() and seen_while_encoding == [1]
    assert len(keywords.queries) == 1 and len(response.results) == 5


class DownEncoder(FakeEncoder):
    """An encoder that is down: what adapters/runner_clients.py raises when the runner cannot answer in time."""

    async def encode_text(self, text: str):  # type: ignore[no-untyped-def]
        self.calls.append(text)
        raise DependencyDown("encoder", "no answer within 0.8s")


@pytest.mark.parametrize("mode", [None, "hybrid", "vector"])
async def test_encoder_down_answers_from_the_keyword_leg_and_says_so_without_caching(mode):
    pipeline, _keywords, cache, _encoder = hybrid_pipeline()
    pipeline.encoder = DownEncoder()
    response = await pipeline.search(SearchRequest(query="jacket", mode=mode))
    assert response.mode == "keyword"
    assert [r.product_id for r in response.results] == [7, 8, 9]
    assert response.message is not None and "text model is unavailable" in response.message
    assert cache.values == {}  # the degraded page is not kept for when the encoder is back


async def test_index_down_is_not_hidden_by_the_keyword_fallback():
    pipeline, _keywords, _cache, _encoder = hybrid_pipeline()

    async def index_down(vector, *, k, filters):  # type: ignore[no-untyped-def]
        raise DependencyDown("index", "connection refused")

    pipeline.index.search = index_down  # type: ignore[method-assign]
    with pytest.raises(DependencyDown):
        await pipeline.search(SearchRequest(query="jacket"))


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
async def test_the_deepest_page_never_asks_the_index_for_more_than_its_cap(mode):
    pipeline, _keywords, _cache, _encoder = hybrid_pipeline()
    asked: list[int] = []
    search = pipeline.index.search

    async def capped(vector, *, k, filters):  # type: ignore[no-untyped-def]
        asked.append(k)
        assert k <= 1000, "the index service refuses k over 1,000"
        return await search(vector, k=k, filters=filters)

    pipeline.index.search = capped  # type: ignore[method-assign]
    response = await pipeline.search(SearchRequest(query="0", offset=999, limit=100, mode=mode))
    assert response.results == [] and response.offset == 999
