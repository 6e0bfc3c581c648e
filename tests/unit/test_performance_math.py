"""Percentiles, grades and advice (domain/performance.py)."""

from __future__ import annotations

import numpy as np
import pytest

from domain.performance import EndpointStats, health_grade, operation_stats, recommendations


def test_operation_stats_are_exact_over_the_samples():
    rng = np.random.default_rng(3)
    samples = rng.lognormal(mean=np.log(20), sigma=0.5, size=20_000)
    stats = operation_stats(samples)
    assert stats is not None and stats.count == 20_000
    assert stats.p95_ms == pytest.approx(float(np.percentile(samples, 95)), abs=0.01)
    assert stats.min_ms <= stats.p50_ms <= stats.p95_ms <= stats.p99_ms <= stats.max_ms
    assert stats.mean_ms == pytest.approx(float(samples.mean()), abs=0.01)
    assert operation_stats([]) is None


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
