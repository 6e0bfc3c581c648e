"""POST /api/v1/search/batch and /api/v1/recommend/batch on the served stack (either topology)."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

pytestmark = pytest.mark.e2e

QUERIES = ["black leather boots", "linen summer dress", "running shoes", "denim jacket", "silk scarf"]


def _api_metrics(stack) -> str:  # type: ignore[no-untyped-def]
    """/metrics of every API process (in the split topology each API replica reports only its own)."""
    topology = stack.log_path.parent / "topology.json"
    if not topology.exists():  # `bentoml serve`: one Prometheus directory for every process
        return str(stack.metrics())
    urls = [url for name, url in json.loads(topology.read_text()).items() if name.startswith("api-")]
    return "\n".join(httpx.get(f"{url}/metrics", timeout=10).text for url in urls)


def _counter(metrics: str, name: str, label: str) -> float:
    pattern = re.compile(r"^" + name + r"_total\{[^}]*" + re.escape(label) + r"[^}]*\} (\S+)$")
    return sum(float(m.group(1)) for line in metrics.splitlines() if (m := pattern.match(line)))


def test_search_batch_answers_each_query_as_the_single_endpoint_does(stack):
    requests = [
        {"query": QUERIES[0], "limit": 5},
        {"query": QUERIES[1], "limit": 3, "offset": 2, "filters": {"max_price": 80}},
        {"query": QUERIES[2], "mode": "vector", "limit": 4},
    ]
    response = stack.post("/api/v1/search/batch", {"queries": requests})
    assert response.status_code == 200, response.text
    items = response.json()["results"]
    assert [item["index"] for item in items] == [0, 1, 2]
    for request, item in zip(requests, items, strict=True):
        assert item["status_code"] == 200 and item["error"] is None, item
        single = stack.post("/api/v1/search", request).json()
        batch_ids = [r["product_id"] for r in item["result"]["results"]]
        assert batch_ids == [r["product_id"] for r in single["results"]]
        assert item["result"]["total"] == single["total"] and item["result"]["mode"] == single["mode"]
        assert len(batch_ids) == request["limit"]


def test_bad_items_get_their_own_error_and_do_not_sink_the_others(stack):
    response = stack.post(
        "/api/v1/search/batch",
        {"queries": [{"query": "wool coat", "limit": 2}, {"query": "   "}, {"query": "hat", "limt": 3},
                     {"query": "hat", "limit": 500}]},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    items = response.json()["results"]
    assert items[0]["status_code"] == 200 and len(items[0]["result"]["results"]) == 2
    assert [item["status_code"] for item in items[1:4]] == [400, 400, 400]
    assert [item["error"]["field"] for item in items[1:4]] == ["query", "limt", "limit"]
    assert all(item["result"] is None for item in items[1:])


def test_batch_envelope_limits_are_a_400_naming_the_field(stack):
    too_many = stack.post("/api/v1/search/batch", {"queries": [{"query": "x"}] * 101})
    assert too_many.status_code == 400 and "queries" in too_many.text
    empty = stack.post("/api/v1/recommend/batch", {"requests": []})
    assert empty.status_code == 400 and "requests" in empty.text
    wrong_key = stack.post("/api/v1/search/batch", {"searches": [{"query": "x"}]})
    assert wrong_key.status_code == 400


def test_search_batch_sends_one_encoder_and_one_index_call(stack):
    # Fresh words, so neither the result cache nor the query-vector cache can answer.
    queries = [{"query": f"{word} {uuid.uuid4().hex[:6]}", "mode": "vector", "limit": 3} for word in QUERIES * 4]
    before = _api_metrics(stack)
    response = stack.post("/api/v1/search/batch", {"queries": queries})
    assert response.status_code == 200, response.text
    assert [item["status_code"] for item in response.json()["results"]] == [200] * len(queries)
    after = _api_metrics(stack)
    calls = {
        runner: _counter(after, "vitrine_bulk_runner_calls", f'runner="{runner}"')
        - _counter(before, "vitrine_bulk_runner_calls", f'runner="{runner}"')
        for runner in ("encoder", "index")
    }
    # 20 queries through the single endpoint make 20 calls of each; gathered, one (a straggler that reached the
    # runner after the window closed on a busy box makes a second). An index held in the API process
    # (INDEX_IN_PROCESS=true) is searched directly: no runner call at all.
    in_process = stack.get("/status").json()["index"].get("in_process", False)
    assert 1 <= calls["encoder"] <= 2, calls
    assert calls["index"] == 0 if in_process else 1 <= calls["index"] <= 2, calls
    items = _counter(after, "vitrine_bulk_items", 'endpoint="search_batch"')
    assert items - _counter(before, "vitrine_bulk_items", 'endpoint="search_batch"') == len(queries)


def test_recommend_batch_answers_each_request_in_order(stack):
    catalog = stack.post("/api/v1/search", {"query": "shirt", "mode": "vector", "limit": 1}).json()
    product_id = catalog["results"][0]["product_id"]
    requests = [
        {"user_id": 910_001, "limit": 4},
        {"user_id": 910_002, "context": "search", "query": "blue jeans", "limit": 3},
        {"user_id": 910_003, "context": "similar", "product_id": product_id, "limit": 5},
        {"user_id": 0},
        {"user_id": 910_004, "context": "similar", "product_id": 1},
        {"user_id": 910_005, "context": "search"},
    ]
    response = stack.post("/api/v1/recommend/batch", {"requests": requests})
    assert response.status_code == 200, response.text
    items = response.json()["results"]
    assert [item["status_code"] for item in items] == [200, 200, 200, 400, 404, 400]
    assert items[3]["error"]["field"] == "user_id"
    assert items[4]["error"]["field"] == "product_id"
    assert "query" in items[5]["error"]["detail"]
    for request, item in zip(requests[:3], items[:3], strict=True):
        single = stack.post("/api/v1/recommend", request).json()
        assert [r["product_id"] for r in item["result"]["results"]] == [r["product_id"] for r in single["results"]]
        assert item["result"]["strategy"] == single["strategy"]
    assert product_id not in [r["product_id"] for r in items[2]["result"]["results"]]
