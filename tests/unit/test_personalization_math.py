"""Blend, decay and profile math (domain/blending.py, domain/session.py, domain/profile.py, domain/popularity.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from domain.blending import RecommendContext, blend
from domain.interactions import InteractionType, interaction_weight
from domain.popularity import popular_products
from domain.profile import LONG_TERM_DECAY_S, StoredInteraction, long_term_profile
from domain.session import SessionState


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


X, Y, Z = unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)


# --- blending -----------------------------------------------------------------------------------------------
def test_feed_blend_uses_the_seed_weights():
    result = blend(RecommendContext.FEED, {"long_term": X, "session": Y})
    assert result.weights == {"long_term": 0.6, "session": 0.4}
    assert np.allclose(result.vector, unit(0.6, 0.4, 0), atol=1e-6)


@pytest.mark.parametrize(
    ("context", "available", "expected"),
    [
        (RecommendContext.FEED, {"long_term": None, "session": Y}, {"session": 1.0}),
        (RecommendContext.FEED, {"long_term": X}, {"long_term": 1.0}),
        (RecommendContext.SEARCH, {"query": Z, "long_term": None}, {"query": 1.0}),
        (RecommendContext.SEARCH, {"query": Z, "long_term": X}, {"query": 0.7, "long_term": 0.3}),
        (RecommendContext.SIMILAR, {"product": Y, "long_term": X}, {"product": 0.8, "long_term": 0.2}),
        (RecommendContext.CATEGORY, {"long_term": X, "session": Y}, {"long_term": 1.0}),
    ],
)
def test_missing_components_are_dropped_and_weights_renormalised(context, available, expected):
    result = blend(context, available)
    assert result.weights == expected
    assert result.components == list(expected)
    assert math.isclose(sum(result.weights.values()), 1.0)
    assert math.isclose(float(np.linalg.norm(result.vector)), 1.0, rel_tol=1e-5)


def test_nothing_available_means_no_blend():
    result = blend(RecommendContext.FEED, {"long_term": None, "session": None})
    assert result.vector is None and result.weights == {} and result.components == []


# --- session EMA --------------------------------------------------------------------------------------------
def test_session_follows_recent_events_and_fades_by_type():
    state = SessionState().apply(InteractionType.CLICK, X, weight=0.3, at=1000.0)
    assert np.allclose(state.embedding(1000.0), X)
    state = state.apply(InteractionType.CLICK, Y, weight=0.3, at=1000.0)
    assert np.allclose(state.embedding(1000.0), unit(1, 1, 0), atol=1e-6)
    # a click fades with a 10-minute time constant
    assert math.isclose(state.strength(1600.0), 0.6 * math.exp(-1), rel_tol=1e-5)
    # after a few hours there is no session left
    assert state.embedding(1000.0 + 3 * 3600) is None


def test_a_purchase_outlasts_a_view():
    state = SessionState()
    state = state.apply(InteractionType.VIEW, X, weight=interaction_weight(InteractionType.VIEW), at=0.0)
    state = state.apply(InteractionType.PURCHASE, Y, weight=interaction_weight(InteractionType.PURCHASE), at=0.0)
    later = state.embedding(20 * 60.0)
    assert later is not None and later[1] > 0.99  # the view (5 min) has faded, the purchase (60 min) has not


def test_session_round_trips_through_its_storage_form():
    state = SessionState().apply(InteractionType.LIKE, Z, weight=0.5, at=50.0)
    again = SessionState.loads(state.dumps())
    assert np.allclose(again.embedding(60.0), state.embedding(60.0))
    assert SessionState.loads(None).embedding(0.0) is None


def test_events_applied_in_either_order_give_the_same_session():
    a = (
        SessionState()
        .apply(InteractionType.CLICK, X, weight=0.3, at=10.0)
        .apply(InteractionType.CLICK, Y, weight=0.3, at=20.0)
    )
    b = (
        SessionState()
        .apply(InteractionType.CLICK, Y, weight=0.3, at=20.0)
        .apply(InteractionType.CLICK, X, weight=0.3, at=10.0)
    )
    assert np.allclose(a.embedding(30.0), b.embedding(30.0), atol=1e-6)


# --- ratings ------------------------------------------------------------------------------------------------
def test_low_ratings_do_not_pull_toward_the_product():
    assert interaction_weight(InteractionType.RATING, 1) == 0
    assert interaction_weight(InteractionType.RATING, 2) == 0
    assert interaction_weight(InteractionType.RATING, 5) > interaction_weight(InteractionType.RATING, 4) > 0
    state = SessionState().apply(InteractionType.CLICK, X, weight=0.3, at=0.0)
    after_bad_rating = state.apply(
        InteractionType.RATING, Y, weight=interaction_weight(InteractionType.RATING, 1), at=0.0
    )
    assert np.allclose(after_bad_rating.embedding(0.0), X)
    with pytest.raises(ValueError):
        interaction_weight(InteractionType.RATING, None)


# --- long-term profile --------------------------------------------------------------------------------------
def test_profile_is_a_time_decayed_weighted_average():
    now = 10 * LONG_TERM_DECAY_S
    events = [
        StoredInteraction(1, InteractionType.PURCHASE, occurred_at=now - LONG_TERM_DECAY_S),  # 1.0 * e^-1
        StoredInteraction(2, InteractionType.CLICK, occurred_at=now),  # 0.3
        StoredInteraction(3, InteractionType.RATING, occurred_at=now, rating=1),  # ignored
        StoredInteraction(4, InteractionType.CLICK, occurred_at=now),  # no vector: ignored
    ]
    profile, used = long_term_profile(events, {1: X, 2: Y, 3: Z}, now=now)
    assert used == 2
    assert np.allclose(profile, unit(math.exp(-1), 0.3, 0), atol=1e-6)


def test_a_full_history_is_the_same_weighted_sum_event_by_event():
    rng = np.random.default_rng(3)
    vectors = {pid: rng.standard_normal(16).astype(np.float32) for pid in range(40)}
    kinds = [InteractionType.VIEW, InteractionType.CLICK, InteractionType.PURCHASE, InteractionType.LIKE]
    events = [
        StoredInteraction(int(rng.integers(45)), kinds[i % 4], occurred_at=float(rng.integers(0, 10**8)))
        for i in range(500)
    ]
    now = 10.0**8
    expected, used = np.zeros(16), 0
    for event in events:
        if event.product_id in vectors:
            strength = interaction_weight(event.interaction_type, None) * math.exp(
                -(now - event.occurred_at) / LONG_TERM_DECAY_S
            )
            expected, used = expected + strength * vectors[event.product_id].astype(np.float64), used + 1
    profile, counted = long_term_profile(events, vectors, now=now)
    assert counted == used and np.allclose(profile, expected / np.linalg.norm(expected), atol=1e-6)


def test_no_usable_events_means_no_profile():
    events = [StoredInteraction(3, InteractionType.RATING, occurred_at=0.0, rating=2)]
    assert long_term_profile(events, {3: Z}, now=0.0) == (None, 0)


# --- popularity ---------------------------------------------------------------------------------------------
def test_popularity_weighs_type_and_recency():
    now = 1_000_000.0
    events = [
        StoredInteraction(1, InteractionType.VIEW, occurred_at=now),
        StoredInteraction(1, InteractionType.VIEW, occurred_at=now),
        StoredInteraction(2, InteractionType.PURCHASE, occurred_at=now),
        StoredInteraction(3, InteractionType.PURCHASE, occurred_at=now - 30 * 24 * 3600),
        StoredInteraction(4, InteractionType.RATING, occurred_at=now, rating=1),
    ]
    ranked = [pid for pid, _ in popular_products(events, now=now)]
    assert ranked == [2, 1, 3]
