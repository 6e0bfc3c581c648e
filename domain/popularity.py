"""Cold start: what is popular now, for a shopper we know nothing about.

Popularity is a time-decayed, type-weighted count of recent interactions (a purchase an hour ago counts more
than a view last week). With no recent interactions at all, the catalog's best products stand in.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from domain.interactions import interaction_weight
from domain.profile import StoredInteraction

POPULARITY_DECAY_S = 3 * 24 * 3600.0


def popular_products(events: Iterable[StoredInteraction], *, now: float) -> list[tuple[int, float]]:
    """(product_id, score), most popular first; ties by product id for a stable order."""
    scores: dict[int, float] = defaultdict(float)
    for event in events:
        weight = interaction_weight(event.interaction_type, event.rating)
        if weight <= 0:  # a one-star rating is attention, not popularity
            continue
        scores[event.product_id] += weight * math.exp(-max(0.0, now - event.occurred_at) / POPULARITY_DECAY_S)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
