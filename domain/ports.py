"""The small protocols the pipelines in domain/ are written against.

Adapters (adapters/, service.py) implement them over BentoML runners, SQLAlchemy and Redis; tests implement
them with plain fakes. Nothing here knows about HTTP, BentoML or a database driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from domain.filters import SearchFilters

Vector = np.ndarray  # float32, L2-normalised, shape (dim,)


@dataclass(frozen=True)
class IndexHits:
    ids: list[int]
    scores: list[float]
    total: int
    index_version: str


class QueryEncoder(Protocol):
    async def encode_text(self, text: str) -> Vector: ...


class ImageEncoder(Protocol):
    async def encode_image(self, image: Any) -> Vector: ...


class Encoder(QueryEncoder, ImageEncoder, Protocol):
    """Both towers; a text-only model's encode_image raises `Unsupported`."""


class VectorSearcher(Protocol):
    async def search(self, vector: Vector, *, k: int, filters: SearchFilters | None) -> IndexHits: ...


class ProductLookup(Protocol):
    async def fetch(self, ids: Sequence[int]) -> Mapping[int, Mapping[str, Any]]:
        """Active products by id; inactive or unknown ids are simply absent."""
        ...


class ResultCache(Protocol):
    async def get_json(self, key: str, *, kind: str) -> Any | None: ...

    async def set_json(self, key: str, value: Any, *, ttl: int, kind: str) -> None: ...
