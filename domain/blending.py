"""How each recommendation context mixes the user's long-term taste, live session, query and product.

| context  | blend (the seed's)                 | needs        |
|----------|------------------------------------|--------------|
| feed     | 0.6 long-term + 0.4 session        |              |
| search   | 0.7 query + 0.3 long-term          | `query`      |
| similar  | 0.8 product + 0.2 long-term        | `product_id` |
| category | 1.0 long-term, within the category | `category`   |

A component that is missing (no session yet, no profile yet) is left out and the remaining weights are
renormalised to sum to 1; the response lists the weights and components actually used. When no component is
left at all, the caller falls back to the cold-start list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class RecommendContext(StrEnum):
    FEED = "feed"
    SEARCH = "search"
    SIMILAR = "similar"
    CATEGORY = "category"


BLENDS: dict[RecommendContext, dict[str, float]] = {
    RecommendContext.FEED: {"long_term": 0.6, "session": 0.4},
    RecommendContext.SEARCH: {"query": 0.7, "long_term": 0.3},
    RecommendContext.SIMILAR: {"product": 0.8, "long_term": 0.2},
    RecommendContext.CATEGORY: {"long_term": 1.0},
}


@dataclass(frozen=True)
class Blend:
    vector: np.ndarray | None
    weights: dict[str, float]  # renormalised, only the components used

    @property
    def components(self) -> list[str]:
        return list(self.weights)


def blend(context: RecommendContext, available: Mapping[str, np.ndarray | None]) -> Blend:
    planned = BLENDS[context]
    used = {name: weight for name, weight in planned.items() if available.get(name) is not None}
    total = sum(used.values())
    if total == 0:
        return Blend(vector=None, weights={})
    weights = {name: round(weight / total, 6) for name, weight in used.items()}
    mixed = np.sum([np.asarray(available[name], dtype=np.float32) * weights[name] for name in weights], axis=0)
    norm = float(np.linalg.norm(mixed))
    vector = (mixed / norm).astype(np.float32) if norm > 0 else None
    return Blend(vector=vector, weights=weights if vector is not None else {})
