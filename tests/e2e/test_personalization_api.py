"""The personalization loop through `bentoml serve`: feedback, sessions, profiles and recommendations."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import httpx
import pytest

from domain.interactions import InteractionType
from domain.session import SessionState
from tests.e2e.support import API_KEY, wait_until

pytestmark = pytest.mark.e2e


def new_user() -> int:
    return random.randint(10_000_000, 2**40)


def products_in(stack, category: str, limit: int = 20) -> list[int]:
    body = stack.post("/api/v1/search", {"query": category, "filters": {"categories": [category]}, "limit": limit})
    return [r["product_id"] for r in body.json()["results"]]


def test_seed_examples_work_as_they_are(stack):
    product_id = products_in(stack, "Tshirts", 1)[0]
    feedback = stack.post(
        "/api/v1/feedback",
        {"user_id": 123, "product_id": product_id, "interaction_type": "click", "context": "search", "position": 2},
    )
    assert feedback.status_code == 200, feedback.text
    assert feedback.json()["status"] == "accepted"
    recommend = stack.post("/api/v1/recommend", {"user_id": 123, "context": "feed", "limit": 20})
    assert recommend.status_code == 200, recommend.text
    assert len(recommend.json()["results"]) == 20


def test_new_user_gets_cold_start_then_clicks_change_the_very_next_feed(stack):
    user = new_user()
    cold = stack.post("/api/v1/recommend", {"user_id": user, "context": "feed", "limit": 10}).json()
    assert cold["strategy"] == "cold_start"
    assert cold["components"] == [] and len(cold["results"]) == 10

    heels = products_in(stack, "Heels", 5)
    for position, product_id in enumerate(heels):
        answer = stack.post(
            "/api/v1/feedback",
            {"user_id": user, "product_id": product_id, "interaction_type": "click", "context": "feed",
             "position": position},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text

    feed = stack.post("/api/v1/recommend", {"user_id": user, "context": "feed", "limit": 10}).json()
    assert feed["strategy"] == "personalized" and feed["cached"] is False
    assert "session" in feed["components"]
    assert sum(feed["blend_weights"].values()) == pytest.approx(1.0)
    categories = [r["category_name"] for r in feed["results"]]
    assert sum(c == "Heels" for c in categories) >= 6, categories


def test_profile_is_written_durably_in_the_background(stack):
    user = new_user()
    for product_id in products_in(stack, "Backpacks", 3):
        stack.post("/api/v1/feedback", {"user_id": user, "product_id": product_id, "interaction_type": "purchase"})
    rows = wait_until(
        lambda: [
            row
            for row in stack.sql("SELECT interaction_count, dim FROM user_profiles WHERE user_id = $1", user)
            if row["interaction_count"] == 3
        ],
        timeout=20,
        what="the background profile update over all three purchases",
    )
    assert rows[0]["dim"] == 384
    feed = stack.post("/api/v1/recommend", {"user_id": user, "context": "feed", "limit": 10}).json()
    assert feed["blend_weights"] == {"long_term": 0.6, "session": 0.4}
    # purchased products are not offered again in the feed or a category
    assert not {r["product_id"] for r in feed["results"]} & set(products_in(stack, "Backpacks", 3))
    category = stack.post(
        "/api/v1/recommend", {"user_id": user, "context": "category", "category": "Backpacks", "limit": 50}
    ).json()
    assert category["blend_weights"] == {"long_term": 1.0}
    assert {r["category_name"] for r in category["results"]} == {"Backpacks"}
    assert not {r["product_id"] for r in category["results"]} & set(products_in(stack, "Backpacks", 3))


def test_similar_to_a_backpack_is_backpacks(stack):
    backpack = products_in(stack, "Backpacks", 1)[0]
    body = stack.post(
        "/api/v1/recommend", {"user_id": new_user(), "context": "similar", "product_id": backpack, "limit": 10}
    ).json()
    assert body["components"] == ["product"] and body["blend_weights"] == {"product": 1.0}
    assert backpack not in [r["product_id"] for r in body["results"]]
    assert sum(r["category_name"] == "Backpacks" for r in body["results"]) >= 7


def test_search_context_blends_the_query(stack):
    body = stack.post(
        "/api/v1/recommend", {"user_id": new_user(), "context": "search", "query": "black heels", "limit": 10}
    ).json()
    assert body["components"] == ["query"]
    assert sum(r["category_name"] == "Heels" for r in body["results"]) >= 6


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"user_id": 1, "context": "search"}, 400, "query"),
        ({"user_id": 1, "context": "similar"}, 400, "product_id"),
        ({"user_id": 1, "context": "category"}, 400, "category"),
        ({"user_id": 1, "context": "similar", "product_id": 987654321987}, 404, "product_id"),
        ({"user_id": "me", "context": "feed"}, 400, "user_id"),
        ({"user_id": 1, "context": "homepage"}, 400, "context"),
    ],
)
def test_recommend_refuses_what_it_cannot_answer(stack, payload, status, field):
    response = stack.post("/api/v1/recommend", payload)
    assert response.status_code == status, response.text
    assert field in response.text


def test_recommendations_are_cached_until_the_user_gives_feedback(stack):
    user = new_user()
    request = {"user_id": user, "context": "feed", "limit": 5}
    assert stack.post("/api/v1/recommend", request).json()["cached"] is False
    assert stack.post("/api/v1/recommend", request).json()["cached"] is True
    stack.post("/api/v1/feedback", {"user_id": user, "product_id": products_in(stack, "Caps", 1)[0],
                                    "interaction_type": "like"})  # fmt: skip
    assert stack.post("/api/v1/recommend", request).json()["cached"] is False


def test_feedback_retries_are_idempotent(stack):
    user, event_id = new_user(), f"evt-{uuid.uuid4()}"
    event = {"user_id": user, "product_id": products_in(stack, "Shirts", 1)[0], "interaction_type": "add_to_cart",
             "event_id": event_id}  # fmt: skip
    first = stack.post("/api/v1/feedback", event)
    second = stack.post("/api/v1/feedback", event)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert (first.headers["idempotent-replayed"], second.headers["idempotent-replayed"]) == ("false", "true")
    assert stack.sql("SELECT count(*) AS n FROM user_interactions WHERE event_id = $1", event_id)[0]["n"] == 1


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"product_id": 987654321987}, 404, "product_id"),
        ({"user_id": "abc"}, 400, "user_id"),
        ({"interaction_type": "rating"}, 400, "rating"),
        ({"interaction_type": "click", "rating": 4}, 400, "rating"),
        ({"context": "homepage"}, 400, "context"),
    ],
)
def test_bad_feedback_is_refused_naming_the_field(stack, fields, status, field):
    base = {"user_id": 5, "product_id": products_in(stack, "Tshirts", 1)[0], "interaction_type": "click"}
    response = stack.post("/api/v1/feedback", {**base, **fields})
    assert response.status_code == status, response.text
    assert field in response.text


def test_concurrent_feedback_for_one_user_is_all_stored_and_applied(stack):
    user = new_user()
    products = products_in(stack, "Tshirts", 20)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60, headers={"X-API-Key": API_KEY}) as client:
            calls = [
                client.post("/api/v1/feedback", json={"user_id": user, "product_id": pid, "interaction_type": "click"})
                for pid in products
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    assert asyncio.run(burst()) == [200] * len(products)
    stored = stack.sql("SELECT count(*) AS n FROM user_interactions WHERE user_id = $1", user)[0]["n"]
    assert stored == len(products)
    # Both API workers wrote to one session under WATCH/MULTI: every click is in it (none lost to a race).
    redis = stack.redis_client()
    [key] = redis.keys(f"vitrine:session:*:{user}")
    state = SessionState.loads(redis.get(key))
    clicks = state.decayed_to(time.time()).parts[InteractionType.CLICK].weight
    assert clicks == pytest.approx(0.3 * len(products), rel=0.02)


def test_feedback_batch_isolates_bad_events(stack):
    user, tshirt = new_user(), products_in(stack, "Tshirts", 1)[0]
    body = stack.post(
        "/api/v1/feedback/batch",
        {"events": [
            {"user_id": user, "product_id": tshirt, "interaction_type": "view"},
            {"user_id": user, "product_id": tshirt, "interaction_type": "warp"},
            {"user_id": user, "product_id": 987654321987, "interaction_type": "view"},
            {"user_id": user, "product_id": tshirt, "interaction_type": "rating", "rating": 5},
        ]},
    ).json()  # fmt: skip
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [item["status_code"] for item in body["results"]] == [200, 400, 404, 200]
    assert stack.sql("SELECT count(*) AS n FROM user_interactions WHERE user_id = $1", user)[0]["n"] == 2
    too_many = stack.post("/api/v1/feedback/batch", {"events": [{"user_id": 1}] * 501})
    assert too_many.status_code == 400 and "events" in too_many.text
