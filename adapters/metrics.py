"""Prometheus metrics shared by every process of the deployment.

`bentoml serve` runs prometheus_client in multiprocess mode (it sets PROMETHEUS_MULTIPROC_DIR before any
service module is imported), so these counters and histograms, written from any API worker or runner
process, add up in the one `/metrics` endpoint and in the operator endpoints that read them back
(`/performance`, `/cache/stats`). Outside `bentoml serve` (CLI, unit tests) they are ordinary in-process metrics.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from adapters.perf_window import RING

# Milliseconds-scale buckets, fine enough that percentiles read back from them are within a few percent.
LATENCY_BUCKETS_S = (
    0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.010, 0.012, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040,
    0.050, 0.060, 0.075, 0.100, 0.125, 0.150, 0.200, 0.250, 0.300, 0.400, 0.500, 0.750, 1.0, 1.5, 2.0, 3.0, 5.0,
    10.0, 30.0,
)  # fmt: skip

STAGE_SECONDS = Histogram(
    "vitrine_stage_seconds",
    "Time spent per pipeline stage (search, recommend, feedback, encode_query, index_search, enrich, cache, ...)",
    ["stage"],
    buckets=LATENCY_BUCKETS_S,
)
STAGE_MAX_SECONDS = Gauge(
    "vitrine_stage_max_seconds", "Slowest observation per stage", ["stage"], multiprocess_mode="max"
)
STAGE_MIN_SECONDS = Gauge(
    "vitrine_stage_min_seconds", "Fastest observation per stage", ["stage"], multiprocess_mode="min"
)
ENDPOINT_REQUESTS = Counter(
    "vitrine_endpoint_requests", "Requests per API endpoint and outcome", ["endpoint", "outcome"]
)
ENDPOINT_CACHE = Counter(
    "vitrine_endpoint_cache", "Answers per endpoint served from the result cache or not", ["endpoint", "cached"]
)
CACHE_LOOKUPS = Counter("vitrine_cache_lookups", "Cache lookups by kind and result", ["kind", "result"])
CACHE_OP_SECONDS = Histogram(
    "vitrine_cache_op_seconds", "Cache round-trip time by operation", ["op"], buckets=LATENCY_BUCKETS_S
)
CACHE_ERRORS = Counter("vitrine_cache_errors", "Cache operations that failed or timed out", ["op"])
FEEDBACK_EVENTS = Counter("vitrine_feedback_events", "Accepted feedback events by type", ["interaction_type"])
EDGE_REFUSED = Counter("vitrine_edge_refused", "Requests refused at the edge before any work", ["reason"])
INDEX_VERSION = Gauge(
    "vitrine_index_version_info", "The index version this process serves (value 1)", ["version", "model"],
    multiprocess_mode="liveall",
)


def observe_stage(stage: str, seconds: float) -> None:
    STAGE_SECONDS.labels(stage=stage).observe(seconds)
    RING.record(stage, seconds)
    # Gauges in "max"/"min" multiprocess mode aggregate across processes; per process we keep a running extreme.
    _extreme(STAGE_MAX_SECONDS, stage, seconds, max)
    _extreme(STAGE_MIN_SECONDS, stage, seconds, min)


_extremes: dict[tuple[int, str], float] = {}


def _extreme(gauge: Gauge, stage: str, seconds: float, pick: Callable[[float, float], float]) -> None:
    key = (id(gauge), stage)
    current = _extremes.get(key)
    best = seconds if current is None else pick(current, seconds)
    if best != current:
        _extremes[key] = best
        gauge.labels(stage=stage).set(best)


def collect() -> Iterable[Metric]:
    """All metrics of all processes of this deployment (or of this process outside `bentoml serve`)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry.collect()
    return REGISTRY.collect()
