"""Interaction types: how strongly each pulls a shopper's taste toward a product, and for how long.

| type        | weight             | session decay (time constant) | why                                              |
|-------------|--------------------|-------------------------------|--------------------------------------------------|
| view        | 0.1                | 5 min                         | seed                                             |
| click       | 0.3                | 10 min                        | seed                                             |
| add_to_cart | 0.6                | 30 min                        | seed                                             |
| purchase    | 1.0                | 60 min                        | seed                                             |
| like        | 0.5                | 20 min                        | deliberate, between a click and a cart add       |
| share       | 0.4                | 15 min                        | deliberate, but often for someone else's taste   |
| rating      | by stars, see below | 30 min                       | explicit judgement                                |

Ratings: 5 stars 0.8, 4 stars 0.5, 3 stars 0.1, 1-2 stars 0. A low rating is recorded but never pulls the
profile or the session toward the product; it also does not push away (a negative weight would turn a
shopper with a single bad rating into "the opposite of that product", which recommends nonsense).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class InteractionType(StrEnum):
    VIEW = "view"
    CLICK = "click"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"
    LIKE = "like"
    SHARE = "share"
    RATING = "rating"


class InteractionContext(StrEnum):
    FEED = "feed"
    SEARCH = "search"
    SIMILAR = "similar"
    CATEGORY = "category"
    OTHER = "other"


@dataclass(frozen=True)
class InteractionRule:
    weight: float
    session_decay_s: float


RULES: dict[InteractionType, InteractionRule] = {
    InteractionType.VIEW: InteractionRule(0.1, 5 * 60),
    InteractionType.CLICK: InteractionRule(0.3, 10 * 60),
    InteractionType.ADD_TO_CART: InteractionRule(0.6, 30 * 60),
    InteractionType.PURCHASE: InteractionRule(1.0, 60 * 60),
    InteractionType.LIKE: InteractionRule(0.5, 20 * 60),
    InteractionType.SHARE: InteractionRule(0.4, 15 * 60),
    InteractionType.RATING: InteractionRule(0.8, 30 * 60),
}

RATING_WEIGHTS = {5: 0.8, 4: 0.5, 3: 0.1, 2: 0.0, 1: 0.0}


def interaction_weight(kind: InteractionType, rating: int | None = None) -> float:
    """How much one event of this kind pulls the user's taste toward the product (0 = not at all)."""
    if kind is InteractionType.RATING:
        if rating is None:
            raise ValueError("a rating event needs a rating")
        return RATING_WEIGHTS[rating]
    return RULES[kind].weight


def session_decay_s(kind: InteractionType) -> float:
    return RULES[kind].session_decay_s
