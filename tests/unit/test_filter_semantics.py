"""What a filter means (domain/filters.py), and the shared table of cases (tests/filter_cases.py) against the
pure implementations: recommendations' `matches` and the test fakes. The vector index runs the same table in
tests/unit/test_vector_index.py, keyword search in tests/integration/test_keyword_search.py, the recommend
pipeline in tests/unit/test_recommend_pipeline.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from domain.filters import SearchFilters
from domain.recommend import matches
from tests import filter_cases
from tests.unit.fakes import FakeIndex


def parsed(case: filter_cases.FilterCase) -> SearchFilters | None:
    return None if case.filters is None else SearchFilters.model_validate(case.filters)


@pytest.mark.parametrize("name", ["brands", "categories", "merchants"])
def test_an_empty_list_is_the_same_filter_as_none(name: str) -> None:
    empty = SearchFilters.model_validate({name: []})
    assert getattr(empty, name) is None
    assert empty == SearchFilters() and empty.is_empty
    assert empty.cache_token() == SearchFilters().cache_token() == ""
    beside = SearchFilters.model_validate({name: [], "max_price": 30})
    assert beside == SearchFilters(max_price=30) and beside.cache_token() == "max_price=30.0"


def test_names_lists_only_the_name_filters_that_constrain() -> None:
    filters = SearchFilters(brands=["Nike"], categories=[], merchants=["Shop A", "Shop B"])
    assert filters.names() == [("brand_name", ["Nike"]), ("merchant_name", ["Shop A", "Shop B"])]
    assert SearchFilters(min_price=1).names() == []


@pytest.mark.parametrize(
    "bad", [{"min_price": -1}, {"min_price": 20, "max_price": 10}, {"brands": "Nike"}, {"colour": "red"}]
)
def test_impossible_filters_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SearchFilters.model_validate(bad)


@pytest.mark.parametrize("case", filter_cases.CASES, ids=str)
def test_the_filter_table_on_recommend_matches(case: filter_cases.FilterCase) -> None:
    filters = parsed(case)
    assert {row["id"] for row in filter_cases.catalog() if matches(row, filters)} == case.expected


@pytest.mark.parametrize("case", filter_cases.CASES, ids=str)
async def test_the_filter_table_on_the_fake_index(case: filter_cases.FilterCase) -> None:
    rows = {row["id"]: row for row in filter_cases.catalog()}
    vectors = {pid: np.eye(len(rows), dtype=np.float32)[n] for n, pid in enumerate(rows)}
    hits = await FakeIndex(vectors, rows).search(np.ones(len(rows), np.float32), k=100, filters=parsed(case))
    assert (set(hits.ids), hits.total) == (case.expected, len(case.expected))
