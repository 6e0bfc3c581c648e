"""The API's edge middleware (adapters/edge.py and friends) around a small real Starlette app, with real Redis.

The served stack's tests (tests/e2e/test_hardening.py) check the same behaviour through `bentoml serve`; here
each rule is checked at its boundary: body sizes, multipart headers, operator keys, CORS, the in-flight bound,
and the Redis-shared token bucket with two "workers" (two middleware instances) drawing on one bucket, and a
bulk request charged one token per item.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from adapters.body_limit import BodyLimitMiddleware
from adapters.http_errors import error_response
from adapters.http_middleware import RequestContextMiddleware
from adapters.in_flight import InFlightLimitMiddleware
from adapters.multipart_guard import MultipartGuardMiddleware
from adapters.operator_access import OperatorAccessMiddleware
from adapters.rate_limit import KEY_PREFIX, RateLimitMiddleware, RedisBuckets, charge_items
from domain.errors import VitrineError
from domain.token_bucket import Limit

pytestmark = pytest.mark.integration

API_KEY, OPERATOR_KEY = "shop-key-1", "ops-key-1"


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"received": len(body)})


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(float(request.query_params.get("s", "0.3")))
    return JSONResponse({"ok": True})


async def stats(request: Request) -> JSONResponse:
    return JSONResponse({"popular_queries": ["red dress"]})


async def search_batch(request: Request) -> JSONResponse:
    """A bulk endpoint as service.py's are: items counted, charged, then answered; errors as _answer maps them."""
    queries = (await request.json())["queries"]
    try:
        await charge_items(len(queries), field="queries")
    except VitrineError as exc:
        return error_response(exc)
    return JSONResponse({"results": len(queries)})


def inner_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/api/v1/search", echo, methods=["POST"]),
            Route("/api/v1/search/image", echo, methods=["POST"]),
            Route("/api/v1/search/batch", search_batch, methods=["POST"]),
            Route("/api/v1/slow", slow, methods=["GET"]),
            Route("/api/v1/users/{user_id}", stats, methods=["DELETE"]),
            Route("/cache/stats", stats, methods=["GET"]),
            Route("/health", stats, methods=["GET"]),
        ]
    )


def client(app: ASGIApp, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge", headers=headers)


# --- body size and framing -------------------------------------------------------------------------------------
def body_limited() -> ASGIApp:
    return BodyLimitMiddleware(inner_app(), max_body_bytes=2048, max_image_bytes=8192)


async def test_a_declared_length_over_the_cap_is_413_with_the_json_body():
    async with client(body_limited()) as http:
        response = await http.post("/api/v1/search", content=b"x" * 2049)
        assert response.status_code == 413
        assert response.json()["error"] == "PayloadTooLarge" and response.json()["field"] == "body"
        assert (await http.post("/api/v1/search", content=b"x" * 2048)).json() == {"received": 2048}
        assert (await http.post("/api/v1/search/image", content=b"x" * 8000)).status_code == 200  # images: own cap
        assert (await http.post("/api/v1/search/image", content=b"x" * 8193)).status_code == 413


async def test_a_chunked_body_is_cut_off_at_the_cap_rather_than_read_whole():
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):
            sent += 1024
            yield b"x" * 1024

    async with client(body_limited()) as http:
        response = await http.post("/api/v1/search", content=chunks())
        assert response.status_code == 413 and response.json()["error"] == "PayloadTooLarge"
        assert sent < 1000 * 1024  # stopped early

        async def small() -> AsyncIterator[bytes]:
            for part in (b"ab", b"cd"):
                yield part

        assert (await http.post("/api/v1/search", content=small())).json() == {"received": 4}


async def form(request: Request) -> JSONResponse:
    parsed = await request.form()
    upload = parsed["image"]
    assert not isinstance(upload, str)
    return JSONResponse({"image": len(await upload.read()), "limit": parsed.get("limit")})


def multipart_guarded() -> ASGIApp:
    app = Starlette(routes=[Route("/api/v1/search/image", form, methods=["POST"])])
    return BodyLimitMiddleware(MultipartGuardMiddleware(app), max_body_bytes=2048, max_image_bytes=8192)


async def test_multipart_without_a_boundary_is_400_naming_the_header():
    async with client(multipart_guarded()) as http:
        response = await http.post(
            "/api/v1/search/image", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}
        )
        assert response.status_code == 400 and response.json()["field"] == "Content-Type"


async def test_a_malformed_multipart_body_is_400_and_a_good_one_reaches_the_app_whole():
    async with client(multipart_guarded()) as http:
        boundary = "0d37f771f3609e9baf6be26654101f5f"
        garbage = f"--{boundary}\r\nTrue--{boundary}--\r\n".encode()  # what the fuzzer found (a 500 before)
        response = await http.post(
            "/api/v1/search/image",
            content=garbage,
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "InvalidRequest" and "malformed" in response.json()["detail"]
        good = await http.post("/api/v1/search/image", files={"image": ("a.png", b"p" * 5000)}, data={"limit": "7"})
        assert good.json() == {"image": 5000, "limit": "7"}
        too_big = await http.post("/api/v1/search/image", files={"image": ("a.png", b"p" * 9000)})
        assert too_big.status_code == 413


# --- operator keys ---------------------------------------------------------------------------------------------
def guarded(operator_keys: list[str]) -> ASGIApp:
    app = OperatorAccessMiddleware(inner_app(), operator_keys=operator_keys, api_keys=[API_KEY])
    return RequestContextMiddleware(app, require_key=True, api_keys=[API_KEY, *operator_keys])


@pytest.mark.parametrize(("method", "path"), [("GET", "/cache/stats"), ("DELETE", "/api/v1/users/7")])
async def test_operator_routes_need_an_operator_key(method, path):
    app = guarded([OPERATOR_KEY])
    async with client(app) as http:
        assert (await http.request(method, path)).status_code == 401
        assert (await http.request(method, path, headers={"X-API-Key": "nope"})).status_code == 401
        forbidden = await http.request(method, path, headers={"X-API-Key": API_KEY})
        assert forbidden.status_code == 403 and forbidden.json()["error"] == "Forbidden"
        assert (await http.request(method, path, headers={"X-API-Key": OPERATOR_KEY})).status_code == 200
        # Probes stay open; an operator key is also a valid API key.
        assert (await http.get("/health")).status_code == 200
        assert (
            await http.post("/api/v1/search", content=b"{}", headers={"X-API-Key": OPERATOR_KEY})
        ).status_code == 200


async def test_with_keys_required_and_no_operator_keys_the_operator_routes_are_closed():
    async with client(guarded([])) as http:
        response = await http.get("/cache/stats", headers={"X-API-Key": API_KEY})
        assert response.status_code == 403 and "OPERATOR_KEYS" in response.json()["detail"]


# --- CORS (Starlette's, placed before the key check by adapters/edge.py) ---------------------------------------
async def test_cors_preflight_is_answered_before_the_key_check():
    app = CORSMiddleware(
        RequestContextMiddleware(inner_app(), require_key=True, api_keys=[API_KEY]),
        allow_origins=["https://shop.example"],
        allow_methods=["POST"],
        allow_headers=["Content-Type", "X-API-Key"],
    )
    async with client(app) as http:
        preflight = await http.options(
            "/api/v1/search",
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
        other = await http.options(
            "/api/v1/search", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers


# --- in-flight bound ---------------------------------------------------------------------------------------------
async def test_past_the_in_flight_bound_requests_are_refused_at_once_and_probes_still_answer():
    app = InFlightLimitMiddleware(inner_app(), max_in_flight=5)
    async with client(app) as http:
        started = time.perf_counter()
        answers = await asyncio.gather(*(http.get("/api/v1/slow?s=0.5") for _ in range(8)), http.get("/health"))
        statuses = sorted(a.status_code for a in answers[:8])
        assert statuses == [200] * 5 + [503] * 3
        refused = next(a for a in answers if a.status_code == 503)
        assert refused.headers["retry-after"] == "1" and refused.json()["retryable"] is True
        assert answers[8].status_code == 200
        assert time.perf_counter() - started < 2
        assert (await http.get("/api/v1/slow?s=0")).status_code == 200  # the count went back down


async def test_the_default_bound_admits_a_burst_of_fifty():
    from domain.settings import Settings

    app = InFlightLimitMiddleware(inner_app(), max_in_flight=Settings().api_max_in_flight)
    async with client(app) as http:
        answers = await asyncio.gather(*(http.get("/api/v1/slow?s=0.2") for _ in range(50)))
        assert all(a.status_code == 200 for a in answers)


# --- rate limits -----------------------------------------------------------------------------------------------
def rate_limited(limit: Limit, redis_url: str | None) -> ASGIApp:
    return RateLimitMiddleware(inner_app(), buckets=RedisBuckets(limit, redis_url, timeout_s=0.25), by_key=True)


async def test_two_workers_share_one_bucket_through_redis(redis_url):
    limit = Limit(rate=20.0, burst=10)
    key = f"rl-{uuid.uuid4().hex}"
    workers = [rate_limited(limit, redis_url), rate_limited(limit, redis_url)]
    clients = [client(app, **{"X-API-Key": key}) for app in workers]
    allowed = refused = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < 2.0:
            answers = await asyncio.gather(*(c.post("/api/v1/search", content=b"{}") for c in clients for _ in (0, 1)))
            for answer in answers:
                if answer.status_code == 200:
                    allowed += 1
                    assert int(answer.headers["ratelimit-remaining"]) <= 10
                else:
                    refused += 1
                    assert answer.status_code == 429 and int(answer.headers["retry-after"]) >= 1
                    assert answer.json()["error"] == "TooManyRequests"
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        for c in clients:
            await c.aclose()
    expected = limit.burst + limit.rate * elapsed
    assert refused > 0
    assert abs(allowed - expected) <= 0.1 * expected, (allowed, expected)


async def test_other_clients_and_other_routes_are_not_limited(redis_url):
    app = rate_limited(Limit(rate=0.1, burst=1), redis_url)
    async with client(app, **{"X-API-Key": f"a-{uuid.uuid4().hex}"}) as first:
        assert (await first.post("/api/v1/search", content=b"{}")).status_code == 200
        assert (await first.post("/api/v1/search", content=b"{}")).status_code == 429
        assert (await first.get("/cache/stats")).status_code == 200
    async with client(app, **{"X-API-Key": f"b-{uuid.uuid4().hex}"}) as second:
        assert (await second.post("/api/v1/search", content=b"{}")).status_code == 200


async def test_redis_down_limits_per_worker_to_its_share_without_waiting():
    buckets = RedisBuckets(Limit(rate=2.0, burst=6), "redis://127.0.0.1:1/0", timeout_s=0.25, workers=2)
    app = RateLimitMiddleware(inner_app(), buckets=buckets, by_key=True)  # nothing listens on port 1
    async with client(app, **{"X-API-Key": "k"}) as http:
        started = time.perf_counter()
        statuses = [(await http.post("/api/v1/search", content=b"{}")).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]  # half the burst: the other worker has the other half
        assert time.perf_counter() - started < 1.0


async def test_a_redis_that_does_not_answer_costs_a_request_its_bound_not_a_hang(redis_url):
    """The buckets' client has no socket timeout (each call is bounded by `within`): a Redis that takes the
    connection and then answers nothing (CLIENT PAUSE) hands the worker its local bucket within the bound."""
    import redis as sync_redis

    buckets = RedisBuckets(Limit(rate=2.0, burst=6), redis_url, timeout_s=0.25, workers=2)
    admin = sync_redis.Redis.from_url(redis_url)
    app = RateLimitMiddleware(inner_app(), buckets=buckets, by_key=True)
    try:
        async with client(app, **{"X-API-Key": f"p-{uuid.uuid4().hex}"}) as http:
            assert (await http.post("/api/v1/search", content=b"{}")).status_code == 200  # connected, via Redis
            admin.execute_command("CLIENT", "PAUSE", "3000", "ALL")
            started = time.perf_counter()
            assert (await http.post("/api/v1/search", content=b"{}")).status_code == 200  # the local share
            assert time.perf_counter() - started < 2.0  # the bound (1 s: REDIS_MIN_TIMEOUT_S), not the pause
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()


async def test_the_bucket_key_holds_no_raw_api_key_and_expires(redis_url):
    import redis.asyncio as aioredis

    secret = f"secret-{uuid.uuid4().hex}"
    async with client(rate_limited(Limit(rate=5.0, burst=5), redis_url), **{"X-API-Key": secret}) as http:
        await http.post("/api/v1/search", content=b"{}")
    store = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key.decode() async for key in store.scan_iter(match=f"{KEY_PREFIX}*")]
        assert keys and not any(secret in key for key in keys)
        mine = KEY_PREFIX + "key:" + hashlib.sha256(secret.encode()).hexdigest()[:24]
        assert mine in keys and 0 < await store.pttl(mine) <= 2000  # a full bucket's refill time, plus a second
    finally:
        await store.aclose()


# --- a bulk request costs one token per item -------------------------------------------------------------------
async def test_a_cost_is_taken_atomically_from_the_bucket_the_workers_share(redis_url):
    limit = Limit(rate=0.01, burst=100)  # next to no refill while the test runs
    workers = [RedisBuckets(limit, redis_url, timeout_s=1.0), RedisBuckets(limit, redis_url, timeout_s=1.0)]
    client_id = f"bulk-{uuid.uuid4().hex}"
    decisions = await asyncio.gather(*(workers[i % 2].take(client_id, 7) for i in range(40)))
    assert sum(d.allowed for d in decisions) == 14  # 98 of the 100 tokens: a fifteenth batch would overdraw
    assert min(d.remaining for d in decisions) >= 2.0
    assert (await workers[0].take(client_id, 2)).allowed  # refused batches took nothing: two are still there
    assert not (await workers[1].take(client_id, 1)).allowed


def batch(size: int) -> dict[str, list[dict[str, str]]]:
    return {"queries": [{"query": "dress"}] * size}


async def test_a_batch_of_n_costs_n_requests(redis_url):
    app = rate_limited(Limit(rate=0.01, burst=12), redis_url)
    async with client(app, **{"X-API-Key": f"bulk-{uuid.uuid4().hex}"}) as http:
        answer = await http.post("/api/v1/search/batch", json=batch(10))
        assert answer.status_code == 200 and answer.json() == {"results": 10}
        assert answer.headers["ratelimit-remaining"] == "2" and answer.headers["ratelimit-limit"] == "12"
        statuses = [(await http.post("/api/v1/search", content=b"{}")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]  # single requests: two left after the batch, not eleven


async def test_a_batch_the_bucket_cannot_cover_is_the_same_429_and_its_retry_after_is_enough(redis_url):
    app = rate_limited(Limit(rate=2.0, burst=4), redis_url)
    async with client(app, **{"X-API-Key": f"bulk-{uuid.uuid4().hex}"}) as http:
        for _ in range(2):
            assert (await http.post("/api/v1/search", content=b"{}")).status_code == 200
        refused = await http.post("/api/v1/search/batch", json=batch(4))  # two tokens left, four wanted
        assert refused.status_code == 429, refused.text
        body = refused.json()
        assert body["error"] == "TooManyRequests" and body["retryable"] is True and "costs 4" in body["detail"]
        assert refused.headers["ratelimit-limit"] == "4" and refused.headers["ratelimit-remaining"] == "1"
        # The door's token is spent; the retry pays the door again, so it must wait for all four: (4 - 1) / 2/s.
        assert refused.headers["retry-after"] == "2" and refused.headers["ratelimit-reset"] == "2"
        await asyncio.sleep(int(refused.headers["retry-after"]))
        again = await http.post("/api/v1/search/batch", json=batch(4))
        assert again.status_code == 200, again.text
        assert again.headers["ratelimit-remaining"] == "0" and "retry-after" not in again.headers


async def test_a_batch_over_the_burst_is_a_400_naming_the_field_and_the_limit(redis_url):
    app = rate_limited(Limit(rate=0.01, burst=5), redis_url)
    async with client(app, **{"X-API-Key": f"bulk-{uuid.uuid4().hex}"}) as http:
        too_big = await http.post("/api/v1/search/batch", json=batch(6))  # no wait would let it through
        assert too_big.status_code == 400, too_big.text
        assert too_big.json()["field"] == "queries" and "burst of 5" in too_big.json()["detail"]
        assert "retry-after" not in too_big.headers
        fits = await http.post("/api/v1/search/batch", json=batch(4))  # the refused one cost its door token only
        assert fits.status_code == 200 and fits.headers["ratelimit-remaining"] == "0"
