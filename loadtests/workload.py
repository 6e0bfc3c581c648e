"""What the simulated shoppers send: queries, users, feedback types. Pure Python, no locust (so tests import it).

Popular queries repeat in a shop: `ShopperQueries` draws from a few hundred shopper queries with Zipf-like
weights (rank r has weight 1/r^s), so the head repeats and the tail is seen now and then. `DistinctQueries`
yields queries that never repeat within a run (for uncached search: every request must encode its query),
built from the same vocabulary so they have the same length in tokens as the popular ones, give or take.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# fmt: off
COLOURS = ("black", "white", "navy", "blue", "grey", "red", "green", "pink", "beige", "brown", "purple",
           "yellow", "olive", "maroon", "cream", "tan", "orange", "silver", "gold", "burgundy")
ITEMS = ("t-shirt", "tshirt", "shirt", "top", "sweatshirt", "hoodie", "jacket", "coat", "blazer", "dress",
         "skirt", "jeans", "trousers", "shorts", "track pants", "leggings", "sneakers", "running shoes",
         "trainers", "heels", "flats", "sandals", "flip flops", "boots", "ankle boots", "formal shoes",
         "backpack", "handbag", "wallet", "belt", "watch", "sunglasses", "cap", "scarf", "swimwear", "socks",
         "football", "water bottle", "capris", "sweater", "polo shirt", "jersey", "duffel bag", "basketball")
MATERIALS = ("cotton", "linen", "denim", "leather", "suede", "wool", "silk", "canvas", "mesh", "fleece",
             "nylon", "jersey", "cashmere", "satin", "knit")
AUDIENCES = ("men", "women", "mens", "womens", "kids", "girls", "boys", "unisex")
BRANDS = ("nike", "adidas", "puma", "reebok", "lee", "quechua", "disney", "catwalk", "kalenji", "lotto")
STYLES = ("casual", "formal", "sports", "running", "summer", "winter", "office", "party", "slim fit",
          "oversized", "printed", "striped", "plain", "graphic", "waterproof", "lightweight")
# fmt: on

# Feedback types in the proportions a shop sees them: many views, some clicks, few carts and purchases.
FEEDBACK_MIX: tuple[tuple[str, float], ...] = (
    ("view", 0.55),
    ("click", 0.25),
    ("add_to_cart", 0.08),
    ("like", 0.05),
    ("purchase", 0.03),
    ("share", 0.02),
    ("rating", 0.02),
)
RATING_STARS = ((5, 0.45), (4, 0.3), (3, 0.12), (2, 0.07), (1, 0.06))
RECOMMEND_CONTEXTS = (("feed", 0.45), ("similar", 0.25), ("search", 0.15), ("category", 0.15))


def shopper_queries(count: int = 400, *, seed: int = 11) -> list[str]:
    """`count` distinct shopper-style queries, most popular first (the order the Zipf weights follow).

    The head is short and generic ("black dress", "nike running shoes"), the tail longer and more specific,
    as in a shop's search log.
    """
    rng = random.Random(seed)
    shapes = (
        (3, lambda: f"{rng.choice(ITEMS)}"),
        (6, lambda: f"{rng.choice(COLOURS)} {rng.choice(ITEMS)}"),
        (4, lambda: f"{rng.choice(BRANDS)} {rng.choice(ITEMS)}"),
        (4, lambda: f"{rng.choice(AUDIENCES)} {rng.choice(ITEMS)}"),
        (3, lambda: f"{rng.choice(STYLES)} {rng.choice(ITEMS)}"),
        (3, lambda: f"{rng.choice(COLOURS)} {rng.choice(MATERIALS)} {rng.choice(ITEMS)}"),
        (2, lambda: f"{rng.choice(STYLES)} {rng.choice(ITEMS)} for {rng.choice(AUDIENCES)}"),
        (2, lambda: f"{rng.choice(ITEMS)} under {rng.choice((20, 25, 30, 40, 50, 75, 100))}"),
        (2, lambda: f"{rng.choice(COLOURS)} {rng.choice(BRANDS)} {rng.choice(ITEMS)} for {rng.choice(AUDIENCES)}"),
    )
    found: dict[str, None] = {}
    while len(found) < count:
        # The popular head of a search log is short: later (rarer) queries lean to the longer shapes.
        tilt = 1.0 + 3.0 * len(found) / count
        weights = [weight * tilt ** (i / len(shapes)) for i, (weight, _) in enumerate(shapes)]
        pick = rng.choices(shapes, weights=weights)[0]
        found.setdefault(pick[1](), None)
    return list(found)


class ZipfSampler:
    """Draws items with probability proportional to 1 / rank^s (rank 1 = the first item)."""

    def __init__(self, items: Sequence[str], *, s: float = 1.0) -> None:
        if not items:
            raise ValueError("no items to draw from")
        self.items = list(items)
        self._cumulative = list(itertools.accumulate(1.0 / (rank**s) for rank in range(1, len(items) + 1)))

    def share_of_top(self, n: int) -> float:
        """Expected fraction of draws that fall on the first `n` items."""
        return self._cumulative[min(n, len(self.items)) - 1] / self._cumulative[-1]

    def draw(self, rng: random.Random) -> str:
        point = rng.random() * self._cumulative[-1]
        return self.items[min(bisect.bisect_left(self._cumulative, point), len(self.items) - 1)]


class DistinctQueries:
    """Queries that do not repeat: a seeded walk over colour x style/material x item x audience (~100k)."""

    def __init__(self, *, seed: int = 5) -> None:
        self._rng = random.Random(seed)
        self._seen: set[str] = set()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        rng = self._rng
        while True:
            middle = rng.choice(MATERIALS) if rng.random() < 0.5 else rng.choice(STYLES)
            query = f"{rng.choice(COLOURS)} {middle} {rng.choice(ITEMS)} for {rng.choice(AUDIENCES)}"
            if rng.random() < 0.3:
                query = f"{rng.choice(BRANDS)} {query}"
            if query not in self._seen:
                self._seen.add(query)
                return query


def weighted(rng: random.Random, options: Sequence[tuple[str, float]] | Sequence[tuple[int, float]]) -> object:
    values = [value for value, _ in options]
    return rng.choices(values, weights=[weight for _, weight in options])[0]


@dataclass
class UserPool:
    """Shop users: ids 1..size, the most active first (Zipf), so some users come back often."""

    size: int = 5000
    s: float = 0.8

    def __post_init__(self) -> None:
        self._sampler = ZipfSampler([str(i) for i in range(1, self.size + 1)], s=self.s)

    def draw(self, rng: random.Random) -> int:
        return int(self._sampler.draw(rng))


def feedback_event(rng: random.Random, user_id: int, product_id: int, context: str, position: int) -> dict[str, object]:
    kind = str(weighted(rng, FEEDBACK_MIX))
    event: dict[str, object] = {
        "user_id": user_id,
        "product_id": product_id,
        "interaction_type": kind,
        "context": context,
        "position": position,
    }
    if kind == "rating":
        event["rating"] = int(weighted(rng, RATING_STARS))  # type: ignore[call-overload]
    return event
