"""Learning from the shop: what shoppers chose after a query raises those products (and their type) for it.

A shopper who searched, then clicked, added to the bag or bought a product of the results, says that product
answers the query. Shoppers mostly act on what they see first, though: a click at rank 1 says less than a click at
rank 8, which the shopper had to scroll to. The examination model (the shopper looks at rank r with probability
`1 / r**eta`, and acts on what they look at according to how well it answers) corrects for it: each choice counts
`r**eta` times (inverse propensity weighting), so a product chosen at rank 8 gains eight times what one chosen at
rank 1 gains (eta 1). The weight is capped at `max_rank**eta`, so one click far down does not outweigh everyone.

Per (normalised query, product), from the shoppers' choices (`ShopperChoice`, one per shopper, product and kind):

    vote(shopper)  = kind weight x min(rank, max_rank)**eta        the shopper's strongest choice of the product
    mass(product)  = sum of votes x n / (n + product_prior)       n shoppers chose it: one shopper's choice counts half
    confidence     = N / (N + query_prior)                        N shoppers acted on the query at all
    attractiveness = confidence x mass / the query's largest mass  0..1: the query's favourite gets `confidence`

A query is learned only when at least `min_shoppers` different shoppers acted on it: a handful of clicks, or one
shopper clicking twenty times, teaches nothing. The search then adds `attractiveness x SearchTuning.learned_weight`
to a product's fused score (`rerank`): bounded, so a learned product rises among those the words and the meaning
found, and is never conjured up from outside them. When most of a query's mass (`type_share`) lies in one product
type, and `min_type_shoppers` shoppers back it, that type is the query's learned type: the search asks the keyword
leg for it when the words name no type ('cozzie' -> Swimwear), before and instead of guessing it from the encoder.

Everything here is computed from the stored events (adapters/learned_ranking.py reads them), so a privacy erase
removes a shopper's votes at the next refresh, and a catalog without feedback learns nothing: its searches are
exactly what they were (same ranking, same cache keys).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from domain.fusion import Fused
from domain.interactions import InteractionType

# How much each kind of choice says about the product answering the query (a click is the unit). Views are not
# choices (a product page seen is usually the click itself, already counted); ratings and shares are about the
# product, not about the query that led to it.
CHOICE_WEIGHTS: Mapping[InteractionType, float] = {
    InteractionType.CLICK: 1.0,
    InteractionType.LIKE: 1.0,
    InteractionType.ADD_TO_CART: 2.0,
    InteractionType.PURCHASE: 3.0,
}


@dataclass(frozen=True)
class ClickModel:
    eta: float = 1.0  # examination at rank r ~ 1 / r**eta (the classic estimate for ranked result lists)
    max_rank: int = 20  # ranks below this count as this one (caps a single vote at max_rank**eta)
    product_prior: float = 1.0  # n / (n + this): a product one shopper chose counts half
    query_prior: float = 5.0  # N / (N + this): a query's learned boosts grow with its shoppers
    min_shoppers: int = 3  # different shoppers who acted on a query before it is learned at all
    min_attractiveness: float = 0.02  # smaller boosts are dropped (they would not move a product)
    max_products: int = 20  # per query, the most attractive (shoppers rarely choose past the first pages)
    max_queries: int = 10_000  # the queries most shoppers acted on: each worker's table stays within about 20 MB
    type_share: float = 0.6  # of a query's mass, for its learned type
    min_type_shoppers: int = 5

    def vote(self, kind: InteractionType, position: int | None) -> float:
        """One shopper's choice of a product at a 0-based `position` (None: unknown, counted as the top)."""
        rank = 1 if position is None else min(position + 1, self.max_rank)
        return CHOICE_WEIGHTS.get(kind, 0.0) * float(rank**self.eta)


@dataclass(frozen=True)
class ShopperChoice:
    """One shopper's choices of one product after one query, of one kind: the stored events, grouped."""

    query: str  # normalised (domain/cache_keys.normalise_query)
    product_id: int
    shopper: int  # user_id
    kind: InteractionType
    position: int | None  # the best (smallest) position the shopper chose it at
    product_type: str | None = None  # the product's category_name, for the query's learned type


@dataclass(frozen=True)
class LearnedQuery:
    """What the shop has taught about one query."""

    attractiveness: Mapping[int, float]  # product id -> 0..1
    shoppers: int
    product_type: str | None = None
    version: str = ""  # changes when what a search would do with this changes (the search cache key holds it)


@dataclass(frozen=True)
class LearnedRanking:
    """The learned queries, by normalised query; empty for a catalog without feedback."""

    queries: Mapping[str, LearnedQuery] = field(default_factory=dict)

    def for_query(self, normalised_query: str) -> LearnedQuery | None:
        return self.queries.get(normalised_query)


NOTHING_LEARNED = LearnedRanking()


class LearnedSource(Protocol):
    async def learned_ranking(self) -> LearnedRanking:
        """What is learned so far, at once (NOTHING_LEARNED until the first load is done)."""
        ...


def learn(choices: Iterable[ShopperChoice], model: ClickModel = ClickModel()) -> LearnedRanking:
    votes: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))  # query, product, shopper
    types: dict[tuple[str, int], str] = {}
    for choice in choices:
        vote = model.vote(choice.kind, choice.position)
        if vote <= 0:
            continue
        by_shopper = votes[choice.query][choice.product_id]
        by_shopper[choice.shopper] = max(vote, by_shopper.get(choice.shopper, 0.0))  # the strongest choice
        if choice.product_type:
            types[(choice.query, choice.product_id)] = choice.product_type
    shoppers = {
        query: len({s for by_shopper in products.values() for s in by_shopper}) for query, products in votes.items()
    }
    busiest = sorted(
        (query for query in votes if shoppers[query] >= model.min_shoppers), key=lambda q: (-shoppers[q], q)
    )
    learned: dict[str, LearnedQuery] = {}
    for query in busiest[: model.max_queries]:
        entry = _learned_query(query, votes[query], shoppers[query], types, model)
        if entry is not None:
            learned[query] = entry
    return LearnedRanking(learned)


def _learned_query(
    query: str,
    products: Mapping[int, Mapping[int, float]],
    shoppers: int,
    types: Mapping[tuple[str, int], str],
    model: ClickModel,
) -> LearnedQuery | None:
    mass = {
        pid: sum(by_shopper.values()) * len(by_shopper) / (len(by_shopper) + model.product_prior)
        for pid, by_shopper in products.items()
    }
    largest = max(mass.values())
    confidence = shoppers / (shoppers + model.query_prior)
    attractiveness = {pid: confidence * value / largest for pid, value in mass.items()}
    best = sorted(attractiveness.items(), key=lambda item: (-item[1], item[0]))[: model.max_products]
    kept = {pid: value for pid, value in best if value >= model.min_attractiveness}
    product_type = _learned_type(query, mass, shoppers, types, model)
    if not kept and product_type is None:
        return None
    return LearnedQuery(kept, shoppers=shoppers, product_type=product_type, version=_version(kept, product_type))


def _learned_type(
    query: str, mass: Mapping[int, float], shoppers: int, types: Mapping[tuple[str, int], str], model: ClickModel
) -> str | None:
    if shoppers < model.min_type_shoppers:
        return None
    by_type: dict[str, float] = defaultdict(float)
    for pid, value in mass.items():
        if (name := types.get((query, pid))) is not None:
            by_type[name] += value
    if not by_type:
        return None
    name, share = max(by_type.items(), key=lambda item: (item[1], item[0]))
    return name if share >= model.type_share * sum(mass.values()) else None


def _version(attractiveness: Mapping[int, float], product_type: str | None) -> str:
    """A digest of what the search does with the entry, rounded so that one more click does not retire the
    query's cached pages every refresh: only a change of a boost by 0.05 or more, or of the type, does."""
    parts = [f"{pid}:{round(value * 20)}" for pid, value in sorted(attractiveness.items()) if round(value * 20)]
    parts.append(product_type or "")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def rerank(fused: Fused, learned: LearnedQuery, *, weight: float) -> Fused:
    """The fused list with each learned product's score raised by `weight x attractiveness`, in the new order
    (ties keep their fused order). Products outside the list stay outside it: they did not match this search."""
    if not learned.attractiveness or weight <= 0:
        return fused
    boosted = [
        (score + weight * learned.attractiveness.get(pid, 0.0), position, pid)
        for position, (pid, score) in enumerate(zip(fused.ids, fused.scores, strict=True))
    ]
    boosted.sort(key=lambda item: (-item[0], item[1]))
    return Fused(ids=[pid for _, _, pid in boosted], scores=[score for score, _, _ in boosted])
