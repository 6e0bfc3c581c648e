"""Performance figures an operator reads: percentiles, a health grade, and rule-based advice.

Percentiles are read from cumulative histogram buckets (Prometheus style), which is what lets every worker and
runner process contribute to one picture: each process adds to shared buckets, and the quantile is
interpolated linearly inside the bucket where it falls. With the fine buckets vitrine uses (1 ms steps at the
low end) that is within a few percent of the exact sample quantile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

GRADES = ((50.0, "excellent"), (100.0, "good"), (150.0, "acceptable"), (300.0, "slow"))
TARGET_P95_MS = 150.0
LOW_HIT_RATE_PERCENT = 30.0
HIGH_ERROR_RATE_PERCENT = 1.0
MIN_SAMPLES_FOR_ADVICE = 20


def quantile_from_buckets(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """`buckets`: (upper bound, cumulative count) sorted by bound, the last bound +inf. Returns the q-quantile."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound  # beyond the last finite bucket: the best we can say is "at least this"
            width = count - lower_count
            fraction = 0.0 if width <= 0 else (rank - lower_count) / width
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True)
class OperationStats:
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float | None
    max_ms: float | None


def operation_stats(
    buckets_s: Sequence[tuple[float, float]], *, total_s: float, min_s: float | None, max_s: float | None
) -> OperationStats | None:
    count = int(buckets_s[-1][1]) if buckets_s else 0
    if count == 0:
        return None

    def ms(q: float) -> float:
        value = quantile_from_buckets(buckets_s, q) or 0.0
        if max_s is not None:
            value = min(value, max_s)  # interpolation cannot exceed what was really seen
        if min_s is not None:
            value = max(value, min_s)
        return round(value * 1000, 2)

    return OperationStats(
        count=count,
        mean_ms=round(total_s / count * 1000, 2),
        p50_ms=ms(0.50),
        p95_ms=ms(0.95),
        p99_ms=ms(0.99),
        min_ms=None if min_s is None else round(min_s * 1000, 2),
        max_ms=None if max_s is None else round(max_s * 1000, 2),
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
