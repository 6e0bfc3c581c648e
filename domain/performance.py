"""Performance figures an operator reads: percentiles, a health grade, and rule-based advice.

The samples come from every process of the deployment over a recent window (adapters/perf_window.py), so
the percentiles here are exact, not interpolated from histogram buckets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

GRADES = ((50.0, "excellent"), (100.0, "good"), (150.0, "acceptable"), (300.0, "slow"))
TARGET_P95_MS = 150.0
LOW_HIT_RATE_PERCENT = 30.0
HIGH_ERROR_RATE_PERCENT = 1.0
MIN_SAMPLES_FOR_ADVICE = 20


@dataclass(frozen=True)
class OperationStats:
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float


def operation_stats(samples_ms: Sequence[float] | np.ndarray) -> OperationStats | None:
    """Exact statistics over the samples (None when there are none)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        return None
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return OperationStats(
        count=int(values.size),
        mean_ms=round(float(values.mean()), 2),
        p50_ms=round(float(p50), 2),
        p95_ms=round(float(p95), 2),
        p99_ms=round(float(p99), 2),
        min_ms=round(float(values.min()), 2),
        max_ms=round(float(values.max()), 2),
    )


def health_grade(p95_ms: float | None) -> str:
    if p95_ms is None:
        return "unknown"
    for limit, grade in GRADES:
        if p95_ms < limit:
            return grade
    return "critical"


@dataclass(frozen=True)
class EndpointStats:
    count: int
    errors: int
    avg_ms: float | None
    p95_ms: float | None
    cache_hits: int
    cache_misses: int

    @property
    def error_rate_percent(self) -> float:
        return round(100.0 * self.errors / self.count, 2) if self.count else 0.0

    @property
    def cache_hit_rate_percent(self) -> float | None:
        looked = self.cache_hits + self.cache_misses
        return round(100.0 * self.cache_hits / looked, 2) if looked else None


def recommendations(endpoints: Mapping[str, EndpointStats], *, cache_hit_rate_percent: float | None) -> list[str]:
    """Plain-language advice from simple rules; empty when nothing stands out."""
    advice = []
    for name, stats in sorted(endpoints.items()):
        if stats.count < MIN_SAMPLES_FOR_ADVICE:
            continue
        if stats.p95_ms is not None and stats.p95_ms > TARGET_P95_MS:
            advice.append(
                f"{name} is slow: p95 {stats.p95_ms:.0f} ms is over the {TARGET_P95_MS:.0f} ms target; "
                "look at /performance operations to see which stage dominates"
            )
        if stats.error_rate_percent > HIGH_ERROR_RATE_PERCENT:
            advice.append(
                f"{name} has a high error rate: {stats.error_rate_percent:.1f}% of {stats.count} requests failed"
            )
        hit_rate = stats.cache_hit_rate_percent
        if hit_rate is not None and hit_rate < LOW_HIT_RATE_PERCENT:
            advice.append(
                f"{name} has a low cache hit rate ({hit_rate:.0f}%): raise its TTL or warm popular queries"
            )
    if cache_hit_rate_percent is not None and cache_hit_rate_percent < LOW_HIT_RATE_PERCENT and not advice:
        advice.append(f"overall cache hit rate is low ({cache_hit_rate_percent:.0f}%)")
    return advice
