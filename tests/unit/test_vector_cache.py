"""The API process's product-vector cache: fewer index calls, never a vector from a replaced index."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from adapters.vector_cache import CachedProductVectors


class IndexVectors:
    """Stands in for the index service: vectors per version, and a log of the ids asked for."""

    def __init__(self) -> None:
        self.version = "v1"
        self.calls: list[list[int]] = []

    async def vectors(self, product_ids: list[int]) -> dict[int, np.ndarray]:
        self.calls.append(list(product_ids))
        scale = 1.0 if self.version == "v1" else 2.0
        return {pid: np.full(4, pid * scale, dtype=np.float32) for pid in product_ids if pid < 100}


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_a_repeated_product_is_answered_without_the_index() -> None:
    index = IndexVectors()
    cache = CachedProductVectors(index, index_version=lambda: index.version)
    first = run(cache.vectors([1, 2]))
    second = run(cache.vectors([2, 3]))
    assert index.calls == [[1, 2], [3]]
    assert second[2].tolist() == first[2].tolist() == [2.0] * 4
    assert cache.hits == 1 and cache.misses == 3


def test_ids_missing_from_the_index_are_asked_again() -> None:
    index = IndexVectors()
    cache = CachedProductVectors(index, index_version=lambda: index.version)
    assert run(cache.vectors([500])) == {}
    run(cache.vectors([500]))
    assert index.calls == [[500], [500]]


def test_a_new_index_version_empties_the_cache() -> None:
    index = IndexVectors()
    cache = CachedProductVectors(index, index_version=lambda: index.version)
    run(cache.vectors([7]))
    index.version = "v2"
    assert run(cache.vectors([7]))[7].tolist() == [14.0] * 4
    assert index.calls == [[7], [7]]


def test_the_least_recently_used_vector_goes_first() -> None:
    index = IndexVectors()
    cache = CachedProductVectors(index, index_version=lambda: index.version, capacity=2)
    run(cache.vectors([1, 2]))
    run(cache.vectors([1]))  # 2 is now the least recently used
    run(cache.vectors([3]))
    index.calls.clear()
    run(cache.vectors([1, 2, 3]))
    assert index.calls == [[2]]


def test_cached_vectors_cannot_be_changed_in_place() -> None:
    index = IndexVectors()
    cache = CachedProductVectors(index, index_version=lambda: index.version)
    vector = run(cache.vectors([5]))[5]
    with pytest.raises(ValueError):
        vector *= 2
