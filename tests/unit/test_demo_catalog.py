"""The synthetic demo catalog: deterministic, varied, and shaped like the real fashion feed."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from domain.catalog_feed import ProductRecord
from domain.demo_catalog import demo_products


def test_same_count_and_seed_give_identical_records() -> None:
    first = list(demo_products(300))
    assert first == list(demo_products(300))
    assert [p.content_hash() for p in first] == [p.content_hash() for p in demo_products(300)]
    assert first != list(demo_products(300, seed=8))


def test_a_prefix_does_not_depend_on_count() -> None:
    assert list(demo_products(50)) == list(demo_products(500))[:50]


def test_identical_in_another_process() -> None:
    # Another interpreter has another hash seed; the catalog must not notice.
    code = (
        "from domain.demo_catalog import demo_products; print([p.content_hash() for p in demo_products(40)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONHASHSEED": "123"},
    ).stdout
    assert out.strip() == str([p.content_hash() for p in demo_products(40)])


def test_ids_are_consecutive_from_first_id() -> None:
    assert [p.id for p in demo_products(5, first_id=10)] == [10, 11, 12, 13, 14]
    assert next(demo_products(1)).id == 900_000_000


def test_generation_is_lazy() -> None:
    assert len(list(itertools.islice(demo_products(10**12), 3))) == 3


def test_catalog_is_varied_and_realistic() -> None:
    products: list[ProductRecord] = list(demo_products(5000))
    categories = Counter(p.category_name for p in products)
    assert len(categories) >= 28
    assert {
        "Dresses",
        "Jeans",
        "Tshirts",
        "Sneakers",
        "Heels",
        "Boots",
        "Sandals",
        "Backpacks",
        "Handbags",
    } <= set(categories)
    assert {"Watches"} <= set(categories)
    assert len({p.brand_name for p in products}) >= 24
    assert len({p.colour for p in products}) >= 14
    assert 3 <= len({p.merchant_name for p in products}) <= 4
    assert {p.fashion_suitable_for for p in products} == {"Men", "Women", "Unisex"}
    assert Counter(p.in_stock for p in products)[False] > 0

    for product in products:
        gender = product.fashion_suitable_for
        assert {"Men": "Men's", "Women": "Women's", "Unisex": "Unisex"}[gender or ""] in product.product_name
        assert product.rrp_price is not None and product.rrp_price >= product.search_price > 0
        assert product.search_price.as_tuple().exponent == -2
        assert product.description is not None and product.description.count(".") >= 3
        assert product.merchant_image_url is product.aw_image_url is product.large_image is None
        assert product.in_stock == bool(product.stock_quantity)
        assert (product.average_rating is None) == (product.reviews == 0)


def test_prices_follow_the_article_type() -> None:
    by_type: dict[str, list[float]] = {}
    for product in demo_products(5000):
        by_type.setdefault(product.category_name or "", []).append(float(product.search_price))

    def median(name: str) -> float:
        values = sorted(by_type[name])
        return values[len(values) // 2]

    assert median("Tshirts") < median("Jeans") < median("Coats")
    assert median("Caps") < median("Watches")
    assert all(p.category_name != "Dresses" or p.fashion_suitable_for == "Women" for p in demo_products(2000))
