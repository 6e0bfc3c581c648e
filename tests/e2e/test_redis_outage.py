"""Redis stops mid-run: vitrine keeps answering without it, says so, and picks it up again when it returns."""

from __future__ import annotations

import random
import time
import uuid

import pytest

from tests.e2e.support import wait_until

pytestmark = pytest.mark.e2e


def test_redis_outage_and_recovery(stack):
    user = random.randint(10_000_000, 2**40)
    tshirt = stack.post("/api/v1/search", {"query": "t-shirt", "limit": 1}).json()["results"][0]["product_id"]
    # A durable profile first, so recommend has something to answer from while Redis is away.
    stack.post("/api/v1/feedback", {"user_id": user, "product_id": tshirt, "interaction_type": "purchase"})
    wait_until(lambda: stack.sql("SELECT 1 FROM user_profiles WHERE user_id = $1", user), timeout=20, what="profile")

    stack.redis.stop()
    try:
        stopped_at = time.monotonic()
        wait_until(lambda: stack.get("/status").json()["status"] == "degraded", timeout=5, what="degraded status")
        assert time.monotonic() - stopped_at <= 5
        assert stack.get("/status").json()["cache"]["state"] == "down"

        for i in range(10):
            response = stack.post("/api/v1/search", {"query": f"shoes during outage {i}", "limit": 5})
            assert response.status_code == 200, response.text
            assert response.json()["cached"] is False

        event_id = f"outage-{uuid.uuid4()}"
        feedback = stack.post(
            "/api/v1/feedback",
            {"user_id": user, "product_id": tshirt, "interaction_type": "click", "event_id": event_id},
        )
        assert feedback.status_code == 200, feedback.text
        assert stack.sql("SELECT 1 FROM user_interactions WHERE event_id = $1", event_id)

        recommend = stack.post("/api/v1/recommend", {"user_id": user, "context": "feed", "limit": 5})
        assert recommend.status_code == 200, recommend.text
        assert recommend.json()["components"] == ["long_term"]
    finally:
        stack.redis.start()

    restarted_at = time.monotonic()
    query = {"query": f"after the outage {uuid.uuid4().hex[:6]}", "limit": 5}

    def hits_again() -> bool:
        stack.post("/api/v1/search", query)
        return stack.post("/api/v1/search", query).json()["cached"] is True

    wait_until(hits_again, timeout=5, interval=0.5, what="cache hits after Redis returned")
    assert time.monotonic() - restarted_at <= 5.5
    wait_until(lambda: stack.get("/status").json()["status"] == "ok", timeout=5, what="status ok again")
