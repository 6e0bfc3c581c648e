"""What shoppers chose, in the search pipeline (domain/search.py with domain/click_model.py), against fakes."""

from __future__ import annotations

from domain import cache_keys
from domain.api_models import SearchRequest
from domain.click_model import NOTHING_LEARNED, LearnedQuery, LearnedRanking
from domain.lexical import KeywordHits, KeywordQuery, Vocabulary
from domain.search import SearchPipeline
from tests.unit.fakes import FakeCache, FakeCatalog, FakeEncoder, FakeIndex, catalog_rows

VOCABULARY = Vocabulary(words={"boots": 40, "boot": 40, "swimwear": 9, "sandals": 30}, documents=200)


class Keywords:
    """A keyword leg where products 1..30 all match the words equally well (the vector leg orders them)."""

    def __init__(self) -> None:
        self.queries: list[KeywordQuery] = []

    async def search(self, query: KeywordQuery, *, k: int, filters) -> KeywordHits:
        self.queries.append(query)
        ids = list(range(1, 31))[:k]
        return KeywordHits(ids=ids, scores=[1.0] * len(ids), total=30)

    async def vocabulary(self) -> Vocabulary:
        return VOCABULARY


class Learned:
    def __init__(self, table: LearnedRanking) -> None:
        self.table = table

    async def learned_ranking(self) -> LearnedRanking:
        return self.table


def pipeline(learned: Learned | None, cache: FakeCache | None = None) -> tuple[SearchPipeline, Keywords]:
    vectors, _prices, rows = catalog_rows(200)
    index, keywords = FakeIndex(vectors, rows), Keywords()
    built = SearchPipeline(
        encoder=FakeEncoder(),
        index=index,
        catalog=FakeCatalog(rows),
        cache=cache or FakeCache(),
        model_tag=lambda: "m",
        index_version=lambda: index.version,
        keywords=keywords,
        learned=learned,
    )
    return built, keywords


async def ranked(pipe: SearchPipeline, query: str, **fields) -> list[int]:
    response = await pipe.search(SearchRequest(query=query, limit=20, **fields))
    return [result.product_id for result in response.results]


async def test_a_cold_catalog_searches_exactly_as_without_learning() -> None:
    for_other_query = LearnedRanking({"sandals": LearnedQuery({5: 1.0}, shoppers=50, version="v")})
    for table in (NOTHING_LEARNED, for_other_query):
        plain_cache, learning_cache = FakeCache(), FakeCache()
        plain, _ = pipeline(None, plain_cache)
        learning, _ = pipeline(Learned(table), learning_cache)
        for mode in ("hybrid", "keyword", "vector"):
            assert await ranked(learning, "boots", mode=mode) == await ranked(plain, "boots", mode=mode)
        assert learning_cache.values.keys() == plain_cache.values.keys()  # same cache keys as ever


async def test_a_learned_product_rises_in_hybrid_search_only() -> None:
    plain, _ = pipeline(None)
    cold = await ranked(plain, "  Boots ")
    chosen = cold[15]  # on the page, but far down
    learning, _ = pipeline(Learned(LearnedRanking({"boots": LearnedQuery({chosen: 0.9}, shoppers=40, version="a")})))
    warm = await ranked(learning, "  Boots ")  # learned as "boots": the query is looked up normalised
    assert warm[0] == chosen
    assert [pid for pid in warm if pid != chosen] == [pid for pid in cold if pid != chosen]  # the rest keep order
    for mode in ("keyword", "vector"):
        assert await ranked(learning, "boots", mode=mode) == await ranked(plain, "boots", mode=mode)


async def test_cached_pages_follow_what_was_learned() -> None:
    cache = FakeCache()
    learned = Learned(LearnedRanking({"boots": LearnedQuery({20: 0.9}, shoppers=40, version="a")}))
    learning, _ = pipeline(learned, cache)
    first = await learning.search(SearchRequest(query="boots", limit=20))
    assert (await learning.search(SearchRequest(query="boots", limit=20))).cached
    plain_key = cache_keys.search_results(
        model="m", index="v1", mode="hybrid", query="boots", filters="", limit=20, offset=0
    )
    assert plain_key not in cache.values  # the learned page is cached under the entry's version
    learned.table = LearnedRanking({"boots": LearnedQuery({21: 0.9}, shoppers=60, version="b")})
    moved = await learning.search(SearchRequest(query="boots", limit=20))
    assert not moved.cached and moved.results[0].product_id == 21 != first.results[0].product_id


async def test_a_learned_type_is_asked_for_at_once_when_the_words_name_none() -> None:
    table = LearnedRanking({"cozzie": LearnedQuery({}, shoppers=30, product_type="Swimwear", version="t")})
    learning, keywords = pipeline(Learned(table))
    response = await learning.search(SearchRequest(query="cozzie", limit=5))
    assert response.interpretation is not None
    assert response.interpretation.applied_filters["product_type"] == "Swimwear"
    (asked,) = keywords.queries  # one keyword search, started alongside the encoder: nothing waited for it
    assert [group.forms for group in asked.groups][-1] == ("swimwear",)
    named = LearnedRanking({"sandals": LearnedQuery({}, shoppers=30, product_type="Sandals", version="t")})
    learning, keywords = pipeline(Learned(named))
    await learning.search(SearchRequest(query="sandals", limit=5))
    assert [group.forms for group in keywords.queries[0].groups] == [("sandals",)]  # the words name it already
