"""Plain fakes implementing the domain protocols (domain/ports.py), for pipeline tests without a server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from domain.filters import SearchFilters
from domain.ports import IndexHits, Vector


class FakeEncoder:
    def __init__(self, dim: int = 8) -> None:
        self.dim = dim
        self.calls: list[str] = []

    async def encode_text(self, text: str) -> Vector:
        self.calls.append(text)
        rng = np.random.default_rng(abs(hash(text)) % 2**32)
        vector = rng.standard_normal(self.dim).astype(np.float32)
        return vector / np.linalg.norm(vector)

    async def encode_image(self, image: Any) -> Vector:
        return await self.encode_text(f"image:{image}")


class FakeIndex:
    """Exact search over a dict of vectors, with price filters only; counts calls and requested k."""

    def __init__(self, vectors: Mapping[int, Vector], prices: Mapping[int, float], version: str = "v1") -> None:
        self.vectors = dict(vectors)
        self.prices = dict(prices)
        self.version = version
        self.requested_k: list[int] = []

    async def search(self, vector: Vector, *, k: int, filters: SearchFilters | None) -> IndexHits:
        self.requested_k.append(k)
        ids = [
            pid
            for pid in self.vectors
            if filters is None
            or ((filters.min_price is None or self.prices[pid] >= filters.min_price)
                and (filters.max_price is None or self.prices[pid] <= filters.max_price))
        ]  # fmt: skip
        ranked = sorted(ids, key=lambda pid: float(self.vectors[pid] @ vector), reverse=True)
        top = ranked[:k]
        return IndexHits(
            ids=top,
            scores=[float(self.vectors[pid] @ vector) for pid in top],
            total=len(ids),
            index_version=self.version,
        )


class FakeCatalog:
    def __init__(self, rows: Mapping[int, Mapping[str, Any]]) -> None:
        self.rows = dict(rows)
        self.inactive: set[int] = set()
        self.fetched: list[list[int]] = []

    async def fetch(self, ids: Sequence[int]) -> dict[int, Mapping[str, Any]]:
        self.fetched.append(list(ids))
        return {pid: self.rows[pid] for pid in ids if pid in self.rows and pid not in self.inactive}


class FakeCache:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.ttls: dict[str, int] = {}

    async def get_json(self, key: str, *, kind: str) -> Any | None:
        return self.values.get(key)

    async def set_json(self, key: str, value: Any, *, ttl: int, kind: str) -> None:
        self.values[key] = value
        self.ttls[key] = ttl


def catalog_rows(
    count: int, dim: int = 8, seed: int = 1
) -> tuple[dict[int, Vector], dict[int, float], dict[int, dict]]:
    rng = np.random.default_rng(seed)
    vectors, prices, rows = {}, {}, {}
    for pid in range(1, count + 1):
        vector = rng.standard_normal(dim).astype(np.float32)
        vectors[pid] = vector / np.linalg.norm(vector)
        prices[pid] = float(10 + pid % 90)
        rows[pid] = {"id": pid, "product_name": f"Product {pid}", "search_price": prices[pid], "in_stock": True}
    return vectors, prices, rows
