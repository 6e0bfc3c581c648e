"""The operator's read-outs: `/performance`, `/performance/slow-queries` and `/cache/stats`.

Figures are read back from the shared Prometheus metrics (adapters/metrics.py), so they cover every API worker
and runner process of the deployment, not just the worker that happens to answer. Slow operations are kept in
a capped list in the cache (Redis: shared by all workers), newest first.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from prometheus_client import Metric

from adapters.cache import Cache
from adapters.metrics import collect
from domain import cache_keys
from domain.performance import EndpointStats, health_grade, operation_stats, recommendations

SLOW_LOG_KEY = f"{cache_keys.PREFIX}:stats:slow"
SLOW_LOG_CAPACITY = 10_000
POPULAR_QUERY_MIN = 5
ACTIVE_USER_MIN = 10


class MetricsSnapshot:
    """One read of all metrics, indexed for the questions below."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.buckets: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = defaultdict(list)
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        for metric in metrics:
            for sample in metric.samples:
                labels = dict(sample.labels)
                if sample.name.endswith("_bucket"):
                    bound = float(labels.pop("le"))
                    self.buckets[(sample.name[: -len("_bucket")], _key(labels))].append((bound, sample.value))
                else:
                    self.values[(sample.name, _key(labels))] += sample.value
        for series in self.buckets.values():
            series.sort()

    def label_values(self, name: str, label: str) -> set[str]:
        found = {dict(labels).get(label) for metric, labels in self.values if metric == name}
        found |= {dict(labels).get(label) for metric, labels in self.buckets if metric == name}
        return {value for value in found if value is not None}

    def value(self, name: str, **labels: str) -> float:
        return self.values.get((name, _key(labels)), 0.0)

    def optional(self, name: str, **labels: str) -> float | None:
        return self.values.get((name, _key(labels)))

    def histogram(self, name: str, **labels: str) -> list[tuple[float, float]]:
        return self.buckets.get((name, _key(labels)), [])


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _operation(snapshot: MetricsSnapshot, stage: str) -> dict[str, Any] | None:
    stats = operation_stats(
        snapshot.histogram("vitrine_stage_seconds", stage=stage),
        total_s=snapshot.value("vitrine_stage_seconds_sum", stage=stage),
        min_s=snapshot.optional("vitrine_stage_min_seconds", stage=stage),
        max_s=snapshot.optional("vitrine_stage_max_seconds", stage=stage),
    )
    return None if stats is None else stats.__dict__


class Observability:
    def __init__(self, cache: Cache, *, slow_query_ms: float) -> None:
        self.cache = cache
        self.slow_query_ms = slow_query_ms
        self.started_at = time.time()

    # --- slow operations ----------------------------------------------------------------------------------
    async def note(self, endpoint: str, duration_s: float, *, user_id: int | None, query: str | None) -> None:
        if duration_s * 1000 < self.slow_query_ms:
            return
        entry = json.dumps(
            {
                "endpoint": endpoint,
                "duration_ms": round(duration_s * 1000, 2),
                "user_id": user_id,
                "query": query,
                "at": time.time(),
            }
        )

        async def push() -> None:
            async with self.cache.client.pipeline(transaction=False) as pipe:
                pipe.lpush(SLOW_LOG_KEY, entry)
                pipe.ltrim(SLOW_LOG_KEY, 0, SLOW_LOG_CAPACITY - 1)  # FIFO: the oldest fall off the end
                await pipe.execute()

        await self.cache.guarded("slow_log", push, None)

    async def slow_queries(self, *, limit: int) -> dict[str, Any]:
        raw = await self.cache.guarded("slow_log", lambda: self.cache.client.lrange(SLOW_LOG_KEY, 0, limit - 1), [])
        return {"threshold_ms": self.slow_query_ms, "count": len(raw), "slow_queries": [json.loads(r) for r in raw]}

    # --- performance --------------------------------------------------------------------------------------
    def performance(self) -> dict[str, Any]:
        snapshot = MetricsSnapshot(collect())
        operations = {
            stage: stats
            for stage in sorted(snapshot.label_values("vitrine_stage_seconds", "stage"))
            if (stats := _operation(snapshot, stage)) is not None
        }
        endpoints: dict[str, EndpointStats] = {}
        for endpoint in sorted(snapshot.label_values("vitrine_endpoint_requests_total", "endpoint")):
            outcomes = {
                dict(labels)["outcome"]: value
                for (name, labels), value in snapshot.values.items()
                if name == "vitrine_endpoint_requests_total" and dict(labels).get("endpoint") == endpoint
            }
            count = int(sum(outcomes.values()))
            timing = operations.get(endpoint)
            endpoints[endpoint] = EndpointStats(
                count=count,
                errors=int(sum(v for outcome, v in outcomes.items() if outcome.startswith("5"))),
                avg_ms=None if timing is None else timing["mean_ms"],
                p95_ms=None if timing is None else timing["p95_ms"],
                cache_hits=int(snapshot.value("vitrine_endpoint_cache_total", endpoint=endpoint, cached="true")),
                cache_misses=int(snapshot.value("vitrine_endpoint_cache_total", endpoint=endpoint, cached="false")),
            )
        overall_p95 = max((s.p95_ms for s in endpoints.values() if s.p95_ms is not None), default=None)
        cache = self.cache_counts(snapshot)
        return {
            "health": health_grade(overall_p95),
            "worst_endpoint_p95_ms": overall_p95,
            "operations": operations,
            "endpoints": {
                name: {
                    **stats.__dict__,
                    "error_rate_percent": stats.error_rate_percent,
                    "cache_hit_rate_percent": stats.cache_hit_rate_percent,
                    "health": health_grade(stats.p95_ms),
                }
                for name, stats in endpoints.items()
            },
            "recommendations": recommendations(endpoints, cache_hit_rate_percent=cache["hit_rate_percent"]),
            "slow_query_threshold_ms": self.slow_query_ms,
        }

    # --- cache --------------------------------------------------------------------------------------------
    def cache_counts(self, snapshot: MetricsSnapshot) -> dict[str, Any]:
        kinds = sorted(snapshot.label_values("vitrine_cache_lookups_total", "kind"))
        hits = {k: int(snapshot.value("vitrine_cache_lookups_total", kind=k, result="hit")) for k in kinds}
        misses = {k: int(snapshot.value("vitrine_cache_lookups_total", kind=k, result="miss")) for k in kinds}
        total_hits, total_misses = sum(hits.values()), sum(misses.values())
        looked = total_hits + total_misses
        return {
            "hits": total_hits,
            "misses": total_misses,
            "hit_rate_percent": round(100.0 * total_hits / looked, 2) if looked else None,
            "hits_by_type": hits,
            "misses_by_type": misses,
        }

    async def cache_stats(self) -> dict[str, Any]:
        snapshot = MetricsSnapshot(collect())

        def average_ms(op: str) -> float | None:
            count = snapshot.value("vitrine_cache_op_seconds_count", op=op)
            return round(snapshot.value("vitrine_cache_op_seconds_sum", op=op) / count * 1000, 3) if count else None

        popular = await self.cache.top(cache_keys.query_counts(), limit=50, min_score=POPULAR_QUERY_MIN)
        active = await self.cache.top(cache_keys.user_activity(), limit=100, min_score=ACTIVE_USER_MIN)
        return {
            **self.cache_counts(snapshot),
            "avg_get_ms": average_ms("get"),
            "avg_set_ms": average_ms("set"),
            "errors": int(sum(v for (n, _), v in snapshot.values.items() if n == "vitrine_cache_errors_total")),
            "backend": self.cache.backend,
            "available": self.cache.available,
            "uptime_s": round(time.time() - self.started_at, 1),
            "popular_queries": [{"query": q, "count": int(c)} for q, c in popular],
            "active_users": [{"user_id": int(u), "interactions": int(c)} for u, c in active],
        }
