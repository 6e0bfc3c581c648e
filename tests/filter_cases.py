"""One table of filter cases, run against every implementation of the filters (domain/filters.py says what
each field means): the vector index (tests/unit/test_vector_index.py), keyword search on PostgreSQL and SQLite
(tests/integration/test_keyword_search.py), recommendations' `matches` and cold start, and the test fakes
(tests/unit/test_filter_semantics.py).

The catalog is small and the expected ids are written out by hand, not computed by any implementation.
Every product's name holds the word "widget", so one keyword query reaches all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# id, price, in stock, brand, category, merchant
_PRODUCTS: list[tuple[int, str, bool, str | None, str | None, str | None]] = [
    (1, "10.00", True, "Nike", "Shoes", "Shop A"),
    (2, "25.50", False, "Nike", "Shirts", "Shop B"),
    (3, "40.00", True, "Puma", "Shoes", "Shop A"),
    (4, "60.00", True, "Puma", "Shirts", "Shop B"),
    (5, "99.99", False, "Adidas", "Shoes", "Shop C"),
    (6, "40.00", True, "Nike Kids", "Shoes", None),
    (7, "15.00", True, None, None, "Shop C"),
]
ALL = frozenset(pid for pid, *_ in _PRODUCTS)


def catalog() -> list[dict[str, Any]]:
    """The products as catalog rows (the columns the filters read, named as in the database)."""
    return [
        {
            "id": pid,
            "product_name": f"Widget {pid}",
            "search_price": Decimal(price),
            "in_stock": in_stock,
            "brand_name": brand,
            "category_name": category,
            "merchant_name": merchant,
        }
        for pid, price, in_stock, brand, category, merchant in _PRODUCTS
    ]


@dataclass(frozen=True)
class FilterCase:
    name: str
    filters: dict[str, Any] | None  # the request's JSON `filters`
    expected: frozenset[int]

    def __str__(self) -> str:
        return self.name


CASES = [
    FilterCase("no filters", None, ALL),
    FilterCase("an empty filter object", {}, ALL),
    FilterCase("null fields", {"brands": None, "min_price": None, "in_stock": None}, ALL),
    # An empty list is no constraint (domain/filters.py), on every path: before, keyword search read it as
    # "matches nothing" while the vector index read it as "anything".
    FilterCase("an empty brand list", {"brands": []}, ALL),
    FilterCase("empty category and merchant lists", {"categories": [], "merchants": []}, ALL),
    FilterCase("an empty list beside a price bound", {"brands": [], "max_price": 30}, frozenset({1, 2, 7})),
    FilterCase("one brand, exactly as spelt", {"brands": ["Nike"]}, frozenset({1, 2})),
    FilterCase("brand names are case-sensitive", {"brands": ["nike"]}, frozenset()),
    FilterCase("two brands", {"brands": ["Nike", "Puma"]}, frozenset({1, 2, 3, 4})),
    FilterCase("an unknown brand", {"brands": ["Reebok"]}, frozenset()),
    FilterCase("a known and an unknown brand", {"brands": ["Adidas", "Reebok"]}, frozenset({5})),
    FilterCase("a category", {"categories": ["Shoes"]}, frozenset({1, 3, 5, 6})),
    FilterCase("a merchant", {"merchants": ["Shop C"]}, frozenset({5, 7})),
    FilterCase("min_price is inclusive", {"min_price": 25.5}, frozenset({2, 3, 4, 5, 6})),
    FilterCase("max_price is inclusive", {"max_price": 40}, frozenset({1, 2, 3, 6, 7})),
    FilterCase("a price range of one point", {"min_price": 40, "max_price": 40}, frozenset({3, 6})),
    FilterCase("a price above everything", {"min_price": 1000}, frozenset()),
    FilterCase("in stock", {"in_stock": True}, frozenset({1, 3, 4, 6, 7})),
    FilterCase("out of stock", {"in_stock": False}, frozenset({2, 5})),
    FilterCase(
        "everything at once",
        {"categories": ["Shoes"], "in_stock": True, "max_price": 50, "merchants": ["Shop A"]},
        frozenset({1, 3}),
    ),
    FilterCase("conditions that exclude each other", {"brands": ["Puma"], "in_stock": False}, frozenset()),
]
