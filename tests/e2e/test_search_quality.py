"""Search quality through `bentoml serve` on the real fashion catalog: hybrid by default, modes, and what the
search box understands (spelling, prices, colours, who it is for, shoppers' words)."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def search(stack: Any, query: str, **extra: Any) -> dict[str, Any]:
    response = stack.post("/api/v1/search", {"query": query, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def categories(body: dict[str, Any], top: int = 10) -> list[str]:
    return [result["category_name"] for result in body["results"][:top]]


def test_hybrid_is_the_default_mode(stack):
    body = search(stack, "blue backpack", limit=10)
    assert body["mode"] == "hybrid"
    assert categories(body) == ["Backpacks"] * 10
    scores = [result["score"] for result in body["results"]]
    assert all(isinstance(score, float) for score in scores) and scores == sorted(scores, reverse=True)
    assert body["total"] == 1099  # no filters: every product matches


def test_a_misspelt_jacket_finds_the_jackets(stack):
    body = search(stack, "jakcet", limit=10)
    assert body["interpretation"]["corrected_query"] == "jacket"
    assert categories(body) == ["Jackets"] * 10


def test_price_and_colour_in_the_words(stack):
    body = search(stack, "red dress under 50", limit=20)
    applied = body["interpretation"]["applied_filters"]
    assert applied == {"max_price": 50.0, "colour": ["Red"]}
    assert body["results"] and all(result["price"] <= 50 for result in body["results"])
    assert categories(body, 2) == ["Dresses", "Dresses"]  # the catalog has no red dress under 50: dresses first
    assert body["total"] < 1099  # the price filter counts


def test_colour_ranks_first(stack):
    body = search(stack, "red t-shirt", limit=10)
    assert [(r["category_name"], r["colour"]) for r in body["results"]] == [("Tshirts", "Red")] * 10


def test_an_explicit_filter_wins_over_the_words(stack):
    body = search(stack, "t-shirts between 20 and 40", filters={"max_price": 30}, limit=30)
    assert body["interpretation"]["applied_filters"] == {"min_price": 20.0}
    assert all(20 <= result["price"] <= 30 for result in body["results"])


def test_shoppers_words(stack):
    assert set(categories(search(stack, "kicks for guys"))) <= {"Casual Shoes", "Sports Shoes"}
    assert set(categories(search(stack, "pumps"))) <= {"Heels", "Flats"}
    assert categories(search(stack, "tote")) == ["Handbags"] * 10
    assert set(categories(search(stack, "slides"))) <= {"Flip Flops", "Sandals", "Sports Sandals"}
    tees = search(stack, "tee for ladies")
    assert categories(tees) == ["Tshirts"] * 10
    assert all(r["description"].startswith(("Women ", "Unisex ")) for r in tees["results"][:10])


def test_words_no_table_lists(stack):
    # issue 14: a colour shade, a relation, a negation, a thing described instead of named
    crimson = search(stack, "crimson t-shirt", limit=10)
    assert crimson["interpretation"]["applied_filters"]["colour"] == ["Red"]
    assert [(r["category_name"], r["colour"]) for r in crimson["results"]] == [("Tshirts", "Red")] * 10
    body = search(stack, "tshirt not black")
    assert body["interpretation"]["applied_filters"] == {"excluded_colour": ["Black"]}
    assert categories(body) == ["Tshirts"] * 10 and all(r["colour"] != "Black" for r in body["results"])
    husband = search(stack, "tshirt for my husband")["results"]
    assert all(r["description"].startswith(("Men ", "Unisex ")) for r in husband)
    # words only a dictionary knows, read as the kinds they are (WordNet, domain/shop_words.py)
    assert categories(search(stack, "haversack"), 5) == ["Backpacks"] * 5
    assert categories(search(stack, "sundress"), 5) == ["Dresses"] * 5
    # type prototypes are built in the background on first need; each limit is a search of its own (no cache)
    for limit in range(5, 65):
        laptop = search(stack, "something to carry my laptop to college", limit=limit)
        if "product_type" in (laptop["interpretation"] or {}).get("applied_filters", {}):
            break
        time.sleep(0.5)
    assert laptop["interpretation"]["applied_filters"]["product_type"] == "Backpacks"
    assert categories(laptop, 5) == ["Backpacks"] * 5


def test_keyword_mode(stack):
    body = search(stack, "flip flops", mode="keyword", limit=50)
    assert body["mode"] == "keyword"
    assert body["total"] == 18 and len(body["results"]) == 18
    assert set(categories(body, 50)) == {"Flip Flops"}


def test_vector_mode_and_modes_are_cached_apart(stack):
    query = {"query": "white sneakers for men", "limit": 5}
    vector = search(stack, mode="vector", **query)
    keyword = search(stack, mode="keyword", **query)
    assert (vector["mode"], vector["cached"]) == ("vector", False)
    assert (keyword["mode"], keyword["cached"]) == ("keyword", False)
    again = search(stack, mode="vector", **query)
    assert again["cached"] is True and again["mode"] == "vector"
    assert [r["product_id"] for r in again["results"]] == [r["product_id"] for r in vector["results"]]


def test_pages_of_a_hybrid_search_are_disjoint(stack):
    first = search(stack, "black shoes for men", limit=10)["results"]
    second = search(stack, "black shoes for men", limit=10, offset=10)["results"]
    assert len(first) == len(second) == 10
    assert not {r["product_id"] for r in first} & {r["product_id"] for r in second}
    assert first[-1]["score"] >= second[0]["score"]


def test_nothing_found_says_so_and_suggests_nothing(stack):
    body = search(stack, "qwxz zzyqv", mode="keyword")
    assert body["results"] == [] and body["total"] == 0
    assert "none of its words" in body["message"]
    closest = search(stack, "shoes below $30")  # the cheapest shoe costs 35
    assert closest["interpretation"]["applied_filters"] == {"max_price": 30.0}
    assert all(result["price"] <= 30 for result in closest["results"])
    assert "No product matches the words" in closest["message"]


def test_mode_is_validated(stack):
    response = stack.post("/api/v1/search", {"query": "shoes", "mode": "fuzzy"})
    assert response.status_code == 400
