"""Fusing ranked lists from different retrievers (dense vectors, keywords) into one ranking.

Two ways, both deterministic (ties go to the best single-list rank, then the earlier list, then the id):

`linear_fusion`, what hybrid search uses: each list's scores are first put on a 0..1 scale, then a product's
fused score is the weighted sum over the lists it is in (0 where it is absent). The keyword leg is scaled by
its best score ("max": a product matching the words as well as the best one scores 1, half as well 0.5),
the vector leg by the range of its window ("minmax": cosine similarities of neighbouring products differ
in the second decimal, and only their order within the window carries information). With the keyword leg
at weight 1 and the vector leg at 0.35 (tuned on loadtests/relevance, dev split), the vector leg orders the
products that match the words equally well (many do: every black men's t-shirt matches 'black t-shirt for
men' exactly as well) and fills the page when the words match little, while never lifting a product that
misses the words above one that matches them clearly.

`reciprocal_rank_fusion`: a product scores `weight / (k + rank)` summed over the lists; with scores given,
equal scores share the rank of the first of them (1, 2, 2, 2, 5), so a tie in one list is left to the
others to order. Needs no score scales at all; on the benchmark it trails the linear fusion (see
loadtests/relevance/README.md), and is kept for catalogs whose keyword scores are less informative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

DEFAULT_K = 60.0
Normalise = Literal["max", "minmax"]


@dataclass(frozen=True)
class Ranked:
    """One retriever's answer: ids best first, how much it counts, and their scores (higher is better)."""

    ids: Sequence[int]
    weight: float = 1.0
    scores: Sequence[float] | None = None
    normalise: Normalise = "minmax"  # how linear_fusion scales the scores

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError("fusion weights must not be negative")
        if self.scores is not None and len(self.scores) != len(self.ids):
            raise ValueError("a ranked list needs one score per id")

    def ranks(self) -> list[int]:
        """1-based ranks; with scores, equal scores share the rank of the first of them."""
        if self.scores is None:
            return list(range(1, len(self.ids) + 1))
        ranks: list[int] = []
        for position, score in enumerate(self.scores, start=1):
            tied = position > 1 and score == self.scores[position - 2]
            ranks.append(ranks[-1] if tied else position)
        return ranks

    def scaled(self) -> list[float]:
        """Scores on a 0..1 scale (see the module doc); 1.0 each without scores or with no spread."""
        if self.scores is None or not self.scores:
            return [1.0] * len(self.ids)
        high, low = max(self.scores), min(self.scores)
        if self.normalise == "max":
            return [score / high if high > 0 else 0.0 for score in self.scores]
        return [(score - low) / (high - low) if high > low else 1.0 for score in self.scores]


@dataclass(frozen=True)
class Fused:
    ids: list[int]
    scores: list[float]


def linear_fusion(lists: Sequence[Ranked]) -> Fused:
    scores: dict[int, float] = {}
    best: dict[int, tuple[int, int]] = {}
    for position, ranked in enumerate(lists):
        seen: set[int] = set()
        for rank, (product_id, scaled) in enumerate(zip(ranked.ids, ranked.scaled(), strict=True), start=1):
            if product_id in seen:  # a list that repeats an id counts it once, at its best rank
                continue
            seen.add(product_id)
            scores[product_id] = scores.get(product_id, 0.0) + ranked.weight * scaled
            best[product_id] = min(best.get(product_id, (rank, position)), (rank, position))
    return _ordered(scores, best)


def reciprocal_rank_fusion(lists: Sequence[Ranked], *, k: float = DEFAULT_K) -> Fused:
    if k < 0:
        raise ValueError("k must not be negative")
    scores: dict[int, float] = {}
    best: dict[int, tuple[int, int]] = {}
    for position, ranked in enumerate(lists):
        seen: set[int] = set()
        for rank, product_id in zip(ranked.ranks(), ranked.ids, strict=True):
            if product_id in seen:
                continue
            seen.add(product_id)
            scores[product_id] = scores.get(product_id, 0.0) + ranked.weight / (k + rank)
            best[product_id] = min(best.get(product_id, (rank, position)), (rank, position))
    return _ordered(scores, best)


def _ordered(scores: dict[int, float], best: dict[int, tuple[int, int]]) -> Fused:
    order = sorted(scores, key=lambda pid: (-scores[pid], best[pid], pid))
    return Fused(ids=order, scores=[scores[pid] for pid in order])
