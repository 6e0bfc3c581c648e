"""The embedded default a newcomer gets from `make serve`: SQLite, the in-process cache, the demo catalog."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.support import embedded_env, embedded_stack, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("embedded")
    env = embedded_env(home)
    run_cli("db", "upgrade", env=env)
    run_cli("catalog", "demo", "--count", "400", env=env)
    run_cli("model", "import", "minilm", "--skip-existing", env=env)
    run_cli("index", "build", "--if-stale", env=env)
    with embedded_stack(home, env) as client:
        yield client


def test_embedded_default_serves_search_feedback_and_recommend(embedded):
    status = embedded.get("/status").json()
    assert status["database"]["backend"] == "sqlite" and status["cache"]["backend"] == "in-process"
    assert status["status"] == "ok" and status["index"]["size"] == 400

    search = embedded.post(
        "/api/v1/search",
        json={"query": "summer dresses", "filters": {"min_price": 30, "max_price": 100, "in_stock": True}, "limit": 5},
    )
    assert search.status_code == 200, search.text
    results = search.json()["results"]
    assert results and all(30 <= r["price"] <= 100 and r["in_stock"] for r in results)
    assert embedded.post("/api/v1/search", json={"query": "summer dresses", "filters": {"min_price": 30,
                         "max_price": 100, "in_stock": True}, "limit": 5}).json()["cached"] is True  # fmt: skip

    product = results[0]["product_id"]
    for _ in range(3):
        feedback = embedded.post(
            "/api/v1/feedback", json={"user_id": 9, "product_id": product, "interaction_type": "click"}
        )
        assert feedback.status_code == 200, feedback.text
    feed = embedded.post("/api/v1/recommend", json={"user_id": 9, "context": "feed", "limit": 5}).json()
    assert feed["strategy"] == "personalized" and "session" in feed["components"]


def test_the_demo_catalog_gets_placeholder_pictures_and_the_page_needs_no_key(embedded):
    # The demo catalog has no photos: each product gets an SVG of its category in its colour, not a broken image.
    result = embedded.post("/api/v1/search", json={"query": "dress", "limit": 1}).json()["results"][0]
    picture = embedded.get(f"/images/products/{result['product_id']}")
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/svg+xml"
    assert result["category_name"] in picture.text and picture.headers["x-vitrine-image"] == "placeholder"
    page = embedded.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and 'data-shelf="feed"' in page.text
