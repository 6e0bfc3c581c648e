"""The operator's read-outs: `/performance`, `/performance/slow-queries` and `/cache/stats`.

Both cover every API worker and runner process of the deployment, not just the worker that happens to answer:
`/performance` reads the recent-sample rings of all processes (adapters/perf_window.py) for exact windowed
percentiles; `/cache/stats` reads the shared Prometheus counters (adapters/metrics.py). Slow operations are
kept in a capped list in the cache (Redis: shared by all workers), newest first.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
from prometheus_client import Metric

from adapters.cache import Cache
from adapters.metrics import collect
from adapters.perf_window import recent_samples
from domain import cache_keys
from domain.performance import EndpointStats, health_grade, operation_stats, recommendations

SLOW_LOG_KEY = f"{cache_keys.PREFIX}:stats:slow"
SLOW_LOG_CAPACITY = 10_000
POPULAR_QUERY_MIN = 5
ACTIVE_USER_MIN = 10
ENDPOINTS = ("search", "search_image", "recommend", "feedback", "feedback_batch")


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
        nothing: list[bytes | str] = []
        newest = lambda: self.cache.client.lrange(SLOW_LOG_KEY, 0, limit - 1)  # noqa: E731
        raw = await self.cache.guarded("slow_log", newest, nothing)
        return {"threshold_ms": self.slow_query_ms, "count": len(raw), "slow_queries": [json.loads(r) for r in raw]}

    # --- performance --------------------------------------------------------------------------------------
    def performance(self, *, window_s: float) -> dict[str, Any]:
        """Exact figures over the last `window_s` seconds, from every process's recent samples."""
        samples, oldest = recent_samples(window_s)
        operations = {
            stage: stats.__dict__
            for stage, values in sorted(samples.items())
            if "." not in stage and (stats := operation_stats(values)) is not None
        }
        empty = np.empty(0)
        endpoints: dict[str, EndpointStats] = {}
        for endpoint in ENDPOINTS:
            ok = samples.get(endpoint, empty)
            client_errors = samples.get(f"{endpoint}.4xx", empty).size
            server_errors = samples.get(f"{endpoint}.5xx", empty).size
            if ok.size + client_errors + server_errors == 0:
                continue
            timing = operation_stats(ok)
            endpoints[endpoint] = EndpointStats(
                count=int(ok.size + client_errors + server_errors),
                errors=int(server_errors),
                avg_ms=None if timing is None else timing.mean_ms,
                p95_ms=None if timing is None else timing.p95_ms,
                cache_hits=int(samples.get(f"{endpoint}.cached", empty).size),
                cache_misses=int(samples.get(f"{endpoint}.uncached", empty).size),
            )
        by_cache = {
            stage: stats.__dict__
            for stage, values in sorted(samples.items())
            if stage.endswith((".cached", ".uncached")) and (stats := operation_stats(values)) is not None
        }
        worst_p95 = max((s.p95_ms for s in endpoints.values() if s.p95_ms is not None), default=None)
        cache = self.cache_counts(MetricsSnapshot(collect()))
        return {
            "window_s": window_s,
            "covered_s": None if oldest is None else round(time.time() - oldest, 1),
            "health": health_grade(worst_p95),
            "worst_endpoint_p95_ms": worst_p95,
            "operations": operations,
            "endpoints": {
                name: {
                    **stats.__dict__,
                    "client_errors": int(samples.get(f"{name}.4xx", empty).size),
                    "error_rate_percent": stats.error_rate_percent,
                    "cache_hit_rate_percent": stats.cache_hit_rate_percent,
                    "health": health_grade(stats.p95_ms),
                }
                for name, stats in endpoints.items()
            },
            "cached_vs_uncached": by_cache,
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
