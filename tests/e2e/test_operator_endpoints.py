"""What the people running vitrine see, through `bentoml serve` with two API workers and real Redis."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import httpx
import pytest

from domain.performance import EndpointStats, health_grade, recommendations
from tests.e2e.support import API_KEY, run_cli
from tests.e2e.test_search_api import _batch_histogram

pytestmark = pytest.mark.e2e


def test_ready_was_false_until_the_index_loaded(stack):
    assert stack.ready_before_index["status_code"] == 503
    assert stack.ready_before_index["ready"] is False
    assert stack.ready_before_index["checks"]["index_loaded"] is False
    assert stack.get("/ready").json() == {
        "ready": True,
        "checks": {"model_loaded": True, "index_loaded": True, "database": True, "database_schema": True},
        "database_schema": "the database is at revision 0003, this code's head",
    }


def test_ready_refuses_a_database_behind_the_codes_schema(stack):
    # The revision stamp alone moves (the tables stay as they are), so the stack's other tests are unaffected.
    stack.sql("UPDATE alembic_version SET version_num = '0001'")
    try:
        behind = stack.get("/ready")
        assert behind.status_code == 503
        assert behind.json()["checks"]["database_schema"] is False
        assert behind.json()["database_schema"] == (
            "the database is at revision 0001, this code needs 0003; run `vitrine db upgrade`"
        )
    finally:
        stack.sql("UPDATE alembic_version SET version_num = '0003'")
    assert stack.get("/ready").status_code == 200


def test_probes_and_root(stack):
    assert stack.get("/health").json() == {"status": "ok"}
    assert stack.get("/live").status_code == 200
    root = stack.get("/").json()
    assert root["name"] == "vitrine" and root["links"]["search"] == "/api/v1/search"


def test_status_reports_every_dependency(stack):
    status = stack.get("/status").json()
    assert status["status"] == "ok"
    assert status["database"]["state"] == "up" and status["database"]["catalog_size"] == 1099
    assert status["cache"]["state"] == "up" and status["cache"]["backend"] == "redis"
    assert status["encoder"]["state"] == "up" and status["encoder"]["family"] == "minilm"
    assert status["index"]["state"] == "up" and status["index"]["size"] == 1099
    assert status["index"]["in_process"] is False  # this stack's topology (the image-search stack runs the other)
    assert status["index_version"] and status["model_version"].startswith("vitrine-encoder:")


def test_api_keys_are_enforced_and_probes_stay_open(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as anonymous:
        missing = anonymous.post("/api/v1/search", json={"query": "shoes"})
        assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "ApiKey")
        assert missing.json() == {"error": "Unauthorized", "detail": "missing X-API-Key header", "field": "X-API-Key"}
        wrong = anonymous.post("/api/v1/search", json={"query": "shoes"}, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        assert wrong.json() == {"error": "Unauthorized", "detail": "invalid API key", "field": "X-API-Key"}
        assert anonymous.post(
            "/api/v1/search", json={"query": "shoes"}, headers={"X-API-Key": "another-key"}
        ).is_success
        for path in ("/health", "/live", "/ready", "/metrics", "/status"):
            assert anonymous.get(path).status_code == 200, path


def test_request_ids_are_kept_or_made(stack):
    kept = stack.client.post("/api/v1/search", json={"query": "cap"}, headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    made = stack.post("/api/v1/search", {"query": "cap"})
    assert len(made.headers["x-request-id"]) == 32
    # BentoML's own id comes from OpenTelemetry's middleware, which is left out without a trace exporter
    assert "x-bentoml-request-id" not in made.headers
    log = stack.log_path.read_text(errors="replace")
    assert '"request_id": "abc-123"' in log
    assert API_KEY not in log and "another-key" not in log


def test_a_repeated_search_is_a_hit_that_skips_the_encoder(stack):
    query = {"query": f"green jacket {uuid.uuid4().hex[:6]}", "limit": 5}
    assert stack.post("/api/v1/search", query).json()["cached"] is False
    before = stack.operator.get("/cache/stats").json()
    batches_before, _ = _batch_histogram(stack.metrics(), "encode_text")
    assert stack.post("/api/v1/search", query).json()["cached"] is True
    after = stack.operator.get("/cache/stats").json()
    batches_after, _ = _batch_histogram(stack.metrics(), "encode_text")
    assert batches_after == batches_before
    assert after["hits_by_type"]["search"] == before["hits_by_type"]["search"] + 1
    assert set(after) >= {"hits", "misses", "hit_rate_percent", "hits_by_type", "avg_get_ms", "uptime_s"}


def test_a_repeated_query_in_a_new_context_skips_the_encoder_too(stack):
    query = f"striped socks {uuid.uuid4().hex[:6]}"
    stack.post("/api/v1/search", {"query": query, "limit": 3})
    batches_before, _ = _batch_histogram(stack.metrics(), "encode_text")
    stack.post("/api/v1/search", {"query": query, "limit": 4})  # another result key, same query embedding
    batches_after, _ = _batch_histogram(stack.metrics(), "encode_text")
    assert batches_after == batches_before


def test_cache_ttls_are_the_configured_ones(stack):
    # Product rows live in each worker's hot layer too, so a probe may write none: drop them everywhere first.
    assert stack.operator.delete("/cache", params={"kind": "product"}).status_code == 200
    time.sleep(1.2)  # workers follow the product generation within a second (adapters/product_cache.py)
    stack.post("/api/v1/search", {"query": f"ttl probe {uuid.uuid4().hex[:6]}", "limit": 3})
    redis = stack.redis_client()

    def ttls(kind: str) -> list[int]:
        return [redis.ttl(key) for key in redis.scan_iter(match=f"vitrine:{kind}:*", count=1000)]

    # Keys written by earlier tests have run down since; the probe's are fresh: none above the configured TTL,
    # and the newest within a minute or so of it.
    for kind, ttl in (("search", 300), ("product", 3600), ("qemb", 7200)):
        found = ttls(kind)
        assert found and all(0 < left <= ttl for left in found) and max(found) >= ttl - 50, (kind, found)


def test_performance_percentiles_cover_both_workers_and_agree_with_the_client(stack):
    time.sleep(1.0)  # nothing of earlier tests inside the window below
    started = time.time()
    timings = []

    async def drive() -> None:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60, headers={"X-API-Key": API_KEY}) as client:
            for i in range(60):
                t0 = time.perf_counter()
                response = await client.post("/api/v1/search", json={"query": f"perf probe {i % 20}", "limit": 5})
                timings.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200

    asyncio.run(drive())
    report = stack.operator.get(f"/performance?window_s={time.time() - started + 0.2:.2f}").json()
    search = report["endpoints"]["search"]
    assert search["count"] == 60  # whichever of the two workers answered
    assert search["cache_hits"] == 40 and search["cache_misses"] == 20
    server, client = report["operations"]["search"], statistics.quantiles(timings, n=100)
    # The server's time is inside the client's: below it, but not by more than the HTTP round trip.
    assert server["p50_ms"] <= statistics.median(timings) <= server["p50_ms"] + 25
    assert server["p95_ms"] <= client[94] + 1
    assert server["max_ms"] <= max(timings)
    assert report["cached_vs_uncached"]["search.cached"]["count"] == 40
    assert {"encode_query", "index_search", "enrich"} <= set(report["operations"])
    lag = report["operations"]["event_loop_lag"]  # sampled every 0.1 s by each worker
    assert lag["count"] >= 5 and 0 <= lag["p50_ms"] <= lag["max_ms"]
    # The grade and the advice are what domain/performance.py makes of the figures the report shows.
    stats = {
        name: EndpointStats(**{key: figures[key] for key in EndpointStats.__dataclass_fields__})
        for name, figures in report["endpoints"].items()
    }
    assert report["worst_endpoint_p95_ms"] == max(s.p95_ms for s in stats.values() if s.p95_ms is not None)
    assert report["health"] == health_grade(report["worst_endpoint_p95_ms"]) != "unknown"
    advice = recommendations(stats, cache_hit_rate_percent=None)
    overall = [line for line in report["recommendations"] if line.startswith("overall cache hit rate is low")]
    assert report["recommendations"] == advice + overall and not (advice and overall)


def test_slow_queries_are_listed_newest_first(stack):
    body = stack.operator.get("/performance/slow-queries?limit=5").json()
    assert body["threshold_ms"] == 50
    for entry in body["slow_queries"]:
        assert entry["duration_ms"] >= 50 and entry["endpoint"]
    stamps = [entry["at"] for entry in body["slow_queries"]]
    assert stamps == sorted(stamps, reverse=True)


def test_metrics_expose_stages_cache_feedback_and_index_version(stack):
    # A request of its own, so the test holds when it runs alone and not only after the others.
    stack.post("/api/v1/search", {"query": f"metrics {uuid.uuid4().hex[:6]}", "limit": 3})
    text = stack.metrics()
    for name in ("vitrine_stage_seconds_bucket", "vitrine_cache_lookups_total", "vitrine_index_version_info",
                 "bentoml_service_adaptive_batch_size", "vitrine_endpoint_requests_total",
                 "vitrine_event_loop_lag_seconds"):  # fmt: skip
        assert name in text, name


def test_pattern_invalidation_clears_one_kind(stack):
    query = {"query": f"invalidate me {uuid.uuid4().hex[:6]}", "limit": 3}
    stack.post("/api/v1/search", query)
    deleted = stack.operator.delete("/cache", params={"kind": "search"}).json()
    assert deleted["deleted"] >= 1
    assert stack.post("/api/v1/search", query).json()["cached"] is False
    refused = stack.operator.delete("/cache", params={"kind": "everything"})
    assert refused.status_code == 400
    assert [error["loc"] for error in refused.json()["detail"]] == [["kind"]]


@pytest.mark.parametrize(
    ("path", "field"),
    [("/performance?window_s=-1", "window_s"), ("/performance?window_s=soon", "window_s"),
     ("/performance/slow-queries?limit=0", "limit")],
)  # fmt: skip
def test_operator_routes_answer_bad_input_with_a_400_naming_the_field(stack, path, field):
    response = stack.operator.get(path)
    assert response.status_code == 400, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [[field]]


def test_a_new_index_version_is_served_without_restart_and_uses_new_keys(stack):
    query = {"query": f"white sneakers {uuid.uuid4().hex[:6]}", "limit": 5}
    stack.post("/api/v1/search", query)
    assert stack.post("/api/v1/search", query).json()["cached"] is True
    previous = stack.get("/status").json()["index"]["version"]
    run_cli("index", "build", env=stack.env)
    current = stack.wait_for_index_version(previous)
    time.sleep(2 * float(stack.env["INDEX_RELOAD_INTERVAL_S"]) + 0.5)  # every worker has asked the index since

    def search_on_a_new_connection(body: dict[str, object]) -> dict[str, object]:
        # A kept-alive connection stays with one API worker; new ones are spread over both.
        with httpx.Client(base_url=stack.url, headers=stack.client.headers, timeout=30) as client:
            answer: dict[str, object] = client.post("/api/v1/search", json=body).json()
            return answer

    # Whichever worker answers, it keys pages by the new version: the old page is not served, and a page one
    # worker writes the other reads (a worker still on the old version would miss it).
    for _ in range(6):
        after = search_on_a_new_connection(query)
        assert after["index_version"] == current
    for i in range(6):
        fresh = {"query": f"white sneakers {uuid.uuid4().hex[:6]} {i}", "limit": 5}
        assert search_on_a_new_connection(fresh)["cached"] is False
        assert search_on_a_new_connection(fresh)["cached"] is True
