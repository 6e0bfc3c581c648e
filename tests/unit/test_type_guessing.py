"""Guessing the product type a query's words name none of (domain/product_types.py, domain/search.py)."""

from __future__ import annotations

import numpy as np
import pytest

from domain.api_models import SearchRequest
from domain.lexical import KeywordHits, KeywordQuery, Vocabulary
from domain.product_types import ProductTypes, TypeGuessing
from domain.query_understanding import names_a_type, type_words, understand, with_type
from domain.search import SearchPipeline
from tests.unit.fakes import FakeCache, FakeCatalog, FakeEncoder, FakeIndex, catalog_rows

VOCABULARY = Vocabulary(
    words={"jackets": 11, "jacket": 11, "caps": 15, "cap": 15, "red": 70, "men": 700},
    colours=("Red",),
    documents=1099,
)


def test_the_nearest_prototype_is_the_guess_when_near_enough():
    types = ProductTypes.from_text_vectors(
        ["Caps", "Jackets"], [[np.array([1.0, 0.0]), np.array([1.0, 0.2])], [np.array([0.0, 1.0])] * 2]
    )
    assert np.allclose(np.linalg.norm(types.prototypes, axis=1), 1.0)
    assert types.nearest(np.array([0.1, 0.99])) == "Jackets"
    assert types.nearest(np.array([-0.7, -0.7])) is None
    assert types.nearest(np.array([0.5, 0.5]), guessing=TypeGuessing(min_similarity=0.99)) is None
    # halfway between two types: neither
    assert types.nearest(np.array([0.66, 0.75]) / np.linalg.norm([0.66, 0.75])) is None
    assert types.nearest(np.array([0.66, 0.75]), guessing=TypeGuessing(min_margin=0.0)) == "Jackets"


def test_type_words_and_naming_a_type():
    words = type_words(["Flip Flops", "Caps"])
    assert {"flip", "flops", "flop", "caps", "cap"} <= words
    assert names_a_type(understand("red cap", VOCABULARY), type_words(["Caps"]))
    assert not names_a_type(understand("red puffer", VOCABULARY), type_words(["Caps", "Jackets"]))
    # colour and audience never count as a type
    assert not names_a_type(understand("red for men", VOCABULARY), type_words(["Red Things", "Men"]))


def test_with_type_adds_an_admitting_group_for_the_type():
    typed = with_type(understand("puffer", VOCABULARY), "Jackets", VOCABULARY)
    assert typed.product_type == "Jackets"
    (group,) = typed.keyword.groups
    assert group.forms == ("jackets", "jacket") and group.admits
    assert typed.keyword.admitting == (group,)


class RecordingKeywords:
    """A keyword leg that answers every query with nothing and remembers what it was asked."""

    def __init__(self) -> None:
        self.queries: list[KeywordQuery] = []

    async def search(self, query: KeywordQuery, *, k: int, filters) -> KeywordHits:
        self.queries.append(query)
        return KeywordHits(ids=[], scores=[], total=0)

    async def vocabulary(self) -> Vocabulary:
        return VOCABULARY


class Types:
    def __init__(self, encoder: FakeEncoder, meaning: dict[str, str]) -> None:
        self.encoder, self.meaning = encoder, meaning

    async def product_types(self) -> ProductTypes:
        names = sorted(set(self.meaning.values()))
        # each type's prototype is the fake encoder's vector of a query meaning it
        vectors = [[await self.encoder.encode_text(q) for q, t in self.meaning.items() if t == name] for name in names]
        return ProductTypes.from_text_vectors(names, vectors)


def pipeline_with_types(keywords: RecordingKeywords, *, with_types: bool = True) -> SearchPipeline:
    vectors, prices, rows = catalog_rows(50)
    encoder = FakeEncoder()
    index = FakeIndex(vectors, prices)
    return SearchPipeline(
        encoder=encoder,
        index=index,
        catalog=FakeCatalog(rows),
        cache=FakeCache(),
        model_tag=lambda: "m",
        index_version=lambda: index.version,
        keywords=keywords,
        product_types=Types(encoder, {"puffer": "Jackets", "trucker hat": "Caps"}) if with_types else None,
        cache_enabled=False,
    )


async def test_hybrid_search_looks_for_the_guessed_type_when_the_words_name_none():
    keywords = RecordingKeywords()
    response = await pipeline_with_types(keywords).search(SearchRequest(query="puffer", limit=5))
    assert response.interpretation is not None
    assert response.interpretation.applied_filters["product_type"] == "Jackets"
    assert [group.forms for group in keywords.queries[-1].groups] == [("jackets", "jacket")]


@pytest.mark.parametrize("query", ["red jacket", "puffer"])
async def test_no_guess_when_the_words_name_a_type_or_there_are_no_prototypes(query):
    keywords = RecordingKeywords()
    response = await pipeline_with_types(keywords, with_types=query != "puffer").search(
        SearchRequest(query=query, limit=5)
    )
    assert response.interpretation is None or "product_type" not in response.interpretation.applied_filters
    assert len(keywords.queries) == 1  # the one keyword search, run alongside the encoder


async def test_keyword_and_vector_modes_never_guess():
    keywords = RecordingKeywords()
    pipeline = pipeline_with_types(keywords)
    for mode in ("keyword", "vector"):
        response = await pipeline.search(SearchRequest(query="puffer", limit=5, mode=mode))
        assert response.interpretation is None or "product_type" not in response.interpretation.applied_filters
