"""What kind of product a query asks for, when its words name none: the nearest type prototype.

Shoppers say 'puffer', 'haversack' or 'something to keep the sun off my head'; the catalog says Jackets,
Backpacks and Caps, and no synonym table lists every such word. The catalog's own types are the vocabulary
here (its article types, `category_name`), each with a prototype vector: the mean of the offline text model's
vectors of a few of its products (adapters/product_types.py takes them from the index, so no encoder time is
spent). A query whose words name no type asks for the type whose prototype is nearest its own
embedding, when that is near enough (`TypeGuessing.min_similarity`); the keyword leg then looks for that type
too (domain/query_understanding.py `with_type`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from domain.ports import Vector


@dataclass(frozen=True)
class TypeGuessing:
    min_similarity: float = 0.3  # cosine to the nearest prototype (tuned on loadtests/relevance hard-tune)
    min_margin: float = 0.02  # over the second nearest: a query between two types names neither


@dataclass(frozen=True)
class ProductTypes:
    """The catalog's product types and their prototype vectors (L2-normalised rows, in `names` order)."""

    names: tuple[str, ...]
    prototypes: np.ndarray

    def __post_init__(self) -> None:
        if self.prototypes.shape[0] != len(self.names):
            raise ValueError("one prototype per type")

    @classmethod
    def from_text_vectors(cls, names: Sequence[str], vectors: Sequence[Sequence[Vector]]) -> ProductTypes:
        """Each type's prototype: the normalised mean of its vectors (of its products, or of texts about it)."""
        rows = []
        for texts in vectors:
            mean = np.mean(np.stack([np.asarray(v, dtype=np.float32) for v in texts]), axis=0)
            rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        dim = rows[0].shape[0] if rows else 0
        return cls(tuple(names), np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32))

    def nearest(self, vector: Vector, *, guessing: TypeGuessing = TypeGuessing()) -> str | None:
        if not self.names:
            return None
        similarities = self.prototypes @ np.asarray(vector, dtype=np.float32)
        order = np.argsort(-similarities)
        best = float(similarities[order[0]])
        second = float(similarities[order[1]]) if len(order) > 1 else -1.0
        if best < guessing.min_similarity or best - second < guessing.min_margin:
            return None
        return self.names[int(order[0])]


class ProductTypeSource(Protocol):
    async def product_types(self) -> ProductTypes | None:
        """The catalog's types with prototypes; None while they are not known (search goes on without)."""
        ...
