"""Percentiles from buckets, grades and advice (domain/performance.py)."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.metrics import LATENCY_BUCKETS_S
from domain.performance import (
    EndpointStats,
    health_grade,
    operation_stats,
    quantile_from_buckets,
    recommendations,
)


def cumulative(samples: np.ndarray) -> list[tuple[float, float]]:
    bounds = [*LATENCY_BUCKETS_S, float("inf")]
    return [(bound, float(np.sum(samples <= bound))) for bound in bounds]


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_bucket_quantiles_agree_with_sample_quantiles(q):
    rng = np.random.default_rng(3)
    samples = rng.lognormal(mean=np.log(0.02), sigma=0.5, size=20_000)  # ~20 ms median, long tail
    estimate = quantile_from_buckets(cumulative(samples), q)
    exact = float(np.quantile(samples, q))
    assert estimate == pytest.approx(exact, rel=0.08)


def test_operation_stats_clamp_to_what_was_seen():
    samples = np.array([0.0101, 0.0102, 0.0103])
    stats = operation_stats(cumulative(samples), total_s=float(samples.sum()), min_s=0.0101, max_s=0.0103)
    assert stats is not None and stats.count == 3
    assert 10.1 <= stats.p50_ms <= stats.p95_ms <= stats.p99_ms <= 10.3
    assert stats.mean_ms == pytest.approx(10.2, abs=0.01)
    assert operation_stats([], total_s=0, min_s=None, max_s=None) is None


@pytest.mark.parametrize(
    ("p95", "grade"),
    [(10, "excellent"), (49.9, "excellent"), (50, "good"), (120, "acceptable"), (299, "slow"), (300, "critical"),
     (None, "unknown")],
)  # fmt: skip
def test_health_grade(p95, grade):
    assert health_grade(p95) == grade


def test_recommendations_name_the_problem():
    endpoints = {
        "search": EndpointStats(count=100, errors=0, avg_ms=200, p95_ms=400, cache_hits=5, cache_misses=95),
        "feedback": EndpointStats(count=100, errors=5, avg_ms=5, p95_ms=8, cache_hits=0, cache_misses=0),
        "recommend": EndpointStats(count=5, errors=5, avg_ms=900, p95_ms=900, cache_hits=0, cache_misses=5),
    }
    advice = " | ".join(recommendations(endpoints, cache_hit_rate_percent=5))
    assert "search is slow" in advice and "search has a low cache hit rate" in advice
    assert "feedback has a high error rate" in advice
    assert "recommend" not in advice  # too few requests to judge
    healthy = {"search": EndpointStats(count=100, errors=0, avg_ms=5, p95_ms=9, cache_hits=80, cache_misses=20)}
    assert recommendations(healthy, cache_hit_rate_percent=80) == []
