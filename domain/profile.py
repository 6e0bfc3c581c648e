"""The long-term taste profile: a time-decayed, weight-averaged embedding over everything a user did.

    profile = normalise( sum_i  weight(type_i, rating_i) * exp(-age_i / LONG_TERM_DECAY_S) * vector(product_i) )

Recomputed from the stored interactions (the durable record), off the request path, after each feedback;
only the most recent `MAX_EVENTS` count, which bounds the work for very active users.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from domain.interactions import InteractionType, interaction_weight

LONG_TERM_DECAY_S = 30 * 24 * 3600.0  # a month: last season's purchases still count, last year's barely
MAX_EVENTS = 500


@dataclass(frozen=True)
class StoredInteraction:
    product_id: int
    interaction_type: InteractionType
    occurred_at: float  # epoch seconds
    rating: int | None = None


def long_term_profile(
    events: Iterable[StoredInteraction], vectors: Mapping[int, np.ndarray], *, now: float
) -> tuple[np.ndarray | None, int]:
    """(the profile, the number of events that contributed); None when nothing pulls in any direction."""
    used: list[np.ndarray] = []
    strengths: list[float] = []
    for event in events:
        vector = vectors.get(event.product_id)
        weight = interaction_weight(event.interaction_type, event.rating)
        if vector is None or weight <= 0:
            continue
        age = max(0.0, now - event.occurred_at)
        used.append(vector)
        strengths.append(weight * math.exp(-age / LONG_TERM_DECAY_S))
    if not used:
        return None, 0
    # One product of matrices rather than a numpy operation per event: an active shopper has up to MAX_EVENTS.
    total = np.asarray(strengths, dtype=np.float32) @ np.asarray(used, dtype=np.float32)
    norm = float(np.linalg.norm(total))
    if norm == 0:
        return None, 0
    return (total / norm).astype(np.float32), len(used)
