"""The hardened edge through `bentoml serve` (two API workers, real PostgreSQL and Redis).

On the shared stack: request size limits, malformed multipart, deep pages, operator-only routes, the privacy
erase, and the popular-query and logging hygiene. On a second serve of the same prepared stack, with rate
limits and CORS switched on: the Redis-shared token bucket's accuracy across both workers, bulk requests' cost
of one request per item, and CORS.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import OPERATOR_KEY, Stack
from tests.e2e.support import API_KEY, free_port, serve, stop_process_group, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def leave_no_search_pages(stack: Stack) -> Iterator[None]:
    """The pages cached here would outlive the second serve below; later tests expect only fresh ones."""
    yield
    stack.operator.delete("/cache", params={"kind": "search"})


# --- request size and shape ------------------------------------------------------------------------------------
def test_a_body_over_the_limit_is_413_before_it_is_read_and_the_stack_stays_well(stack):
    huge = b'{"query": "' + b"a" * (3 * 1024 * 1024) + b'"}'
    started = time.perf_counter()
    response = stack.client.post("/api/v1/search", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "PayloadTooLarge" and response.json()["field"] == "body"
    assert time.perf_counter() - started < 2
    assert stack.post("/api/v1/search", {"query": "dress", "limit": 1}).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/search/image", "/api/v1/feedback/batch"])
def test_multipart_without_a_boundary_is_a_400_not_a_500(stack, path):
    response = stack.client.post(path, content=b"--x\r\n\r\n--x--", headers={"content-type": "multipart/form-data"})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "Content-Type"


def test_an_idle_keep_alive_connection_is_not_closed_under_a_client_about_to_reuse_it(stack):
    # uvicorn's default closed connections idle for 5 s; a shopper idle that long could send its next request
    # as the server closed the connection and get "connection closed" (a load run's one error).
    host, port = stack.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/live")
        assert connection.getresponse().read() == b'{"alive":true}'
        first = connection.sock
        time.sleep(6)
        connection.request("GET", "/live")  # http.client reconnects only after a "Connection: close"
        assert connection.getresponse().read() == b'{"alive":true}'  # RemoteDisconnected if the server closed it
        assert connection.sock is first
    finally:
        connection.close()


def test_the_deepest_page_is_empty_rather_than_a_500(stack):
    for mode in ("hybrid", "vector", "keyword"):
        response = stack.post("/api/v1/search", {"query": "0", "offset": 999, "limit": 20, "mode": mode})
        assert response.status_code == 200, (mode, response.text)
        assert response.json()["offset"] == 999
    deepest = stack.post("/api/v1/search", {"query": "dress", "offset": 1000, "limit": 100})
    assert deepest.status_code == 200 and deepest.json()["results"] == []


# --- operator routes ---------------------------------------------------------------------------------------------
OPERATOR_ROUTES = [
    ("GET", "/cache/stats"),
    ("GET", "/performance"),
    ("GET", "/performance/slow-queries"),
    ("DELETE", "/cache?kind=search"),
    ("DELETE", "/api/v1/users/123456789"),
]


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_operator_routes_refuse_shoppers_keys_and_anonymous_callers(stack, method, path):
    with httpx.Client(base_url=stack.url, timeout=30) as anonymous:
        assert anonymous.request(method, path).status_code == 401
        assert anonymous.request(method, path, headers={"X-API-Key": "guess"}).status_code == 401
    forbidden = stack.client.request(method, path)  # a valid API key, not an operator key
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "Forbidden"
    assert stack.operator.request(method, path).status_code == 200


def test_open_routes_hold_no_user_data(stack):
    user = random.randint(10_000_000, 2**40)
    product = stack.post("/api/v1/search", {"query": "shirt", "limit": 1}).json()["results"][0]["product_id"]
    stack.post("/api/v1/feedback", {"user_id": user, "product_id": product, "interaction_type": "click"})
    with httpx.Client(base_url=stack.url, timeout=30) as anonymous:
        for path in ("/health", "/live", "/ready", "/status", "/metrics", "/"):
            answer = anonymous.get(path)
            assert answer.status_code == 200, path
            assert str(user) not in answer.text, path


# --- privacy erase -------------------------------------------------------------------------------------------------
def test_erasing_a_shopper_removes_events_profile_session_and_cached_recommendations(stack):
    user = random.randint(10_000_000, 2**40)
    found = stack.post("/api/v1/search", {"query": "jacket", "limit": 3}).json()["results"]
    products = [result["product_id"] for result in found]
    for product, kind in zip(products, ("click", "add_to_cart", "purchase"), strict=True):
        answer = stack.post("/api/v1/feedback", {"user_id": user, "product_id": product, "interaction_type": kind})
        assert answer.status_code == 200, answer.text
    wait_until(lambda: stack.sql("SELECT 1 FROM user_profiles WHERE user_id = $1", user), timeout=20, what="profile")
    assert stack.post("/api/v1/recommend", {"user_id": user, "context": "feed"}).status_code == 200
    redis = stack.redis_client()

    def user_keys() -> list[bytes]:
        return [
            key
            for pattern in (f"vitrine:session:*:{user}", f"vitrine:profile:*:{user}", f"vitrine:rec:*:{user}:*")
            for key in redis.scan_iter(match=pattern, count=1000)
        ]

    assert user_keys(), "the session, profile and recommendations should be cached before the erase"

    erased = stack.operator.delete(f"/api/v1/users/{user}")
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["user_id"] == user
    assert body["erased"]["interactions"] == 3 and body["erased"]["profiles"] == 1
    assert body["erased"]["session_keys"] >= 1 and body["erased"]["recommendation_keys"] >= 1
    assert stack.sql("SELECT 1 FROM user_interactions WHERE user_id = $1", user) == []
    assert stack.sql("SELECT 1 FROM user_profiles WHERE user_id = $1", user) == []
    assert user_keys() == []
    assert redis.zscore("vitrine:stats:users", str(user)) is None
    # Erasing is idempotent: again, nothing left to remove.
    again = stack.operator.delete(f"/api/v1/users/{user}").json()["erased"]
    assert again["interactions"] == 0 and again["profiles"] == 0 and again["session_keys"] == 0
    # And the shopper is a stranger now: recommendations are the cold-start ones.
    assert stack.post("/api/v1/recommend", {"user_id": user, "context": "feed"}).json()["strategy"] == "cold_start"


def test_erase_refuses_a_bad_user_id(stack):
    for bad in ("0", "abc"):  # operator routes answer bad input as the JSON routes do: 400 naming the field
        refused = stack.operator.delete(f"/api/v1/users/{bad}")
        assert refused.status_code == 400
        assert [error["loc"] for error in refused.json()["detail"]] == [["user_id"]]


# --- hygiene ------------------------------------------------------------------------------------------------------
def test_popular_queries_count_only_searches_that_found_something(stack):
    redis = stack.redis_client()
    found, empty = f"dress {uuid.uuid4().hex[:4]}", f"zzqx{uuid.uuid4().hex[:8]}"
    stack.post("/api/v1/search", {"query": found, "mode": "hybrid"})
    nothing = stack.post("/api/v1/search", {"query": empty, "mode": "keyword"})
    assert nothing.status_code == 200 and nothing.json()["results"] == []
    assert stack.post("/api/v1/search", {"query": "", "limit": 5}).status_code == 400
    wait_until(lambda: redis.zscore("vitrine:stats:queries", found) is not None, timeout=5, what="counted query")
    assert redis.zscore("vitrine:stats:queries", empty) is None
    assert redis.zscore("vitrine:stats:queries", "") is None


def test_client_errors_are_logged_without_a_traceback(stack):
    marker = f"bad-{uuid.uuid4().hex[:8]}"
    logged_before = stack.log_path.stat().st_size
    for body in (b"{not json", b'{"query": 5, "limt": 1}', b'{"query": "x", "offset": -1}', b"[]"):
        response = stack.client.post(
            "/api/v1/search", content=body, headers={"content-type": "application/json", "X-Request-ID": marker}
        )
        assert response.status_code == 400, response.text
    time.sleep(0.5)
    with stack.log_path.open("rb") as log:
        log.seek(logged_before)
        written = log.read().decode(errors="replace")
    assert marker in written, "the requests should be in the access log"
    assert "Traceback" not in written
    for line in written.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            entry = json.loads(line)
            assert entry.get("level") not in ("ERROR", "CRITICAL"), line
    assert " ERROR " not in written and "[ERROR]" not in written, written[-3000:]


# --- rate limits and CORS, on a second serve of the prepared stack ----------------------------------------------
RATE, BURST = 20.0, 30
SHOP_ORIGIN = "https://shop.example"


@contextlib.contextmanager
def served_variant(stack: Stack, **settings: str) -> Iterator[str]:
    """The same database, Redis, model and index, served again with other settings; its base URL."""
    port = free_port()
    # A BENTOML_HOME of its own (sharing the model store): `bentoml serve` empties the Prometheus directory under
    # it at start, which would wipe the first stack's metrics.
    home = stack.log_path.parent / f"bentoml-{port}"
    home.mkdir()
    (home / "models").symlink_to(Path(stack.env["BENTOML_HOME"]) / "models", target_is_directory=True)
    env = {**stack.env, "BENTOML_HOME": str(home), **settings}
    process = serve("service:Vitrine", port=port, env=env, log_path=stack.log_path.with_name(f"serve-{port}.log"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/ready", timeout=5).status_code == 200, timeout=240, interval=1,
                   what="the variant stack")  # fmt: skip
        yield url
    finally:
        stop_process_group(process)


@pytest.fixture(scope="module")
def limited(stack: Stack) -> Iterator[str]:
    with served_variant(
        stack, RATE_LIMIT_PER_S=str(RATE), RATE_LIMIT_BURST=str(BURST), API_CORS_ORIGINS=SHOP_ORIGIN
    ) as url:
        yield url


def test_rate_limit_is_shared_by_both_workers_and_accurate(limited):
    key = "another-key"  # a bucket of its own: per API key
    counts = {"allowed": 0, "limited": 0, "other": 0}
    statuses_lock = threading.Lock()
    bad_headers: list[str] = []
    stop_at = time.monotonic() + 6.0

    def hammer() -> None:
        with httpx.Client(base_url=limited, timeout=10, headers={"X-API-Key": key}) as http:
            while time.monotonic() < stop_at:
                # A 400 (empty query) is cheap for the server and still takes a token: the limit is on requests.
                answer = http.post("/api/v1/search", json={"query": ""})
                with statuses_lock:
                    if answer.status_code == 429:
                        counts["limited"] += 1
                        if (
                            not {"retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"}
                            <= set(answer.headers)
                            or answer.json().get("error") != "TooManyRequests"
                        ):
                            bad_headers.append(str(answer.headers))
                    elif answer.status_code == 400:
                        counts["allowed"] += 1
                        if answer.headers.get("ratelimit-limit") != str(BURST):
                            bad_headers.append(str(answer.headers))
                    else:
                        counts["other"] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    expected = BURST + RATE * elapsed
    print(f"rate limit: {counts} in {elapsed:.2f}s; expected allowed {expected:.1f}")
    assert counts["other"] == 0 and bad_headers == []
    assert counts["limited"] > counts["allowed"] / 2, "the load should be well over the limit"
    assert abs(counts["allowed"] - expected) <= 0.1 * expected, (counts, expected)
    # Another key has its own bucket, and probes are never limited.
    with httpx.Client(base_url=limited, timeout=10, headers={"X-API-Key": API_KEY}) as other:
        assert other.post("/api/v1/search", json={"query": "dress", "limit": 1}).status_code == 200
        assert all(other.get("/health").status_code == 200 for _ in range(50))


@pytest.mark.parametrize(
    ("path", "field", "bad_item"),
    [
        ("/api/v1/search/batch", "queries", {"query": ""}),
        ("/api/v1/recommend/batch", "requests", {"user_id": 0}),
        ("/api/v1/feedback/batch", "events", {"user_id": 0}),
    ],
)
def test_a_bulk_request_costs_one_request_per_item(limited, path, field, bad_item):
    # Bad items are answered one by one (a 400 each, inside a 200) without runner or database work: the cost is
    # per item all the same.
    time.sleep(BURST / RATE + 0.1)  # the bucket of "another-key" full again after the test above
    with httpx.Client(base_url=limited, timeout=10, headers={"X-API-Key": "another-key"}) as http:
        ten = http.post(path, json={field: [bad_item] * 10})
        assert ten.status_code == 200, ten.text
        assert int(ten.headers["ratelimit-remaining"]) <= BURST - 5, ten.headers  # about 20; one token would leave 29
        never = http.post(path, json={field: [bad_item] * (BURST + 1)})
        assert never.status_code == 400, never.text
        assert never.json()["field"] == field and f"burst of {BURST}" in never.json()["detail"]
        refused = http.post(path, json={field: [bad_item] * BURST})  # about 19 tokens left, 30 wanted
        assert refused.status_code == 429, refused.text
        assert {"retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(refused.headers)
        assert refused.json()["error"] == "TooManyRequests" and refused.json()["retryable"] is True


def test_cors_lets_the_storefront_origin_call_the_api(limited):
    with httpx.Client(base_url=limited, timeout=10) as browser:
        preflight = browser.options(
            "/api/v1/search",
            headers={
                "Origin": SHOP_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-api-key",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == SHOP_ORIGIN
        assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
        call = browser.post(
            "/api/v1/search",
            json={"query": "dress", "limit": 1},
            headers={"Origin": SHOP_ORIGIN, "X-API-Key": OPERATOR_KEY},
        )
        assert call.status_code == 200 and call.headers["access-control-allow-origin"] == SHOP_ORIGIN
        assert "ratelimit-remaining" in call.headers["access-control-expose-headers"].lower()
        elsewhere = browser.options(
            "/api/v1/search", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in elsewhere.headers


def test_without_an_origin_setting_there_are_no_cors_headers(stack):
    answer = stack.client.post("/api/v1/search", json={"query": "dress", "limit": 1}, headers={"Origin": SHOP_ORIGIN})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
