"""The API's edge: the ASGI middleware every request passes through, in order, each only when its feature is on.

    CORS               API_CORS_ORIGINS          preflights answered before any key check
    request context    (always)                  request id, API key check, one access log line
    operator access    OPERATOR_KEYS / API_REQUIRE_KEY   adapters/operator_access.py
    OpenAPI document   (always)                  /docs.json valid as 3.0, errors documented  adapters/openapi_doc.py
    body limits        (always)                  413 before the body is read       adapters/body_limit.py
    multipart guard    (always)                  malformed multipart: 400, not 500 adapters/multipart_guard.py
    rate limits        RATE_LIMIT_PER_S          429, shared through Redis; bulk: one per item   adapters/rate_limit.py
    in-flight bound    (always)                  503 past API_MAX_IN_FLIGHT      adapters/in_flight.py
    cheap first        API_CHEAP_FIRST_HOLD_MS   a wave's cache hits before its runner calls   adapters/cheap_first.py
    fast lane          API_FAST_LANE             the shop's routes, not BentoML's dispatch     adapters/fast_lane.py

All are plain ASGI callables (no BaseHTTPMiddleware), so a request pays a few attribute reads for each.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware

from adapters.body_limit import BodyLimitMiddleware
from adapters.cheap_first import CheapFirstMiddleware
from adapters.fast_lane import FastLane, FastLaneMiddleware
from adapters.http_middleware import RequestContextMiddleware
from adapters.in_flight import InFlightLimitMiddleware
from adapters.log_hygiene import install_client_error_filter
from adapters.multipart_guard import MultipartGuardMiddleware
from adapters.openapi_doc import OpenApiDocMiddleware
from adapters.operator_access import OperatorAccessMiddleware
from adapters.rate_limit import RateLimitMiddleware, RedisBuckets
from domain.settings import Settings
from domain.token_bucket import Limit

EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]


def install_edge(service: Any, settings: Settings, *, fast_lane: FastLane) -> None:
    """Add the edge middleware to a BentoML service class (the first added sees a request first)."""
    install_client_error_filter()  # refused requests log one WARNING line, not an ERROR with a traceback
    if settings.api_cors_origins:
        service.add_asgi_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", "X-API-Key", "X-Request-ID", "Idempotency-Key"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    service.add_asgi_middleware(
        RequestContextMiddleware,
        require_key=settings.api_require_key,
        api_keys=[*settings.api_keys, *settings.operator_keys],
    )
    if settings.operator_keys or settings.api_require_key:
        service.add_asgi_middleware(
            OperatorAccessMiddleware, operator_keys=settings.operator_keys, api_keys=settings.api_keys
        )
    service.add_asgi_middleware(OpenApiDocMiddleware)
    service.add_asgi_middleware(
        BodyLimitMiddleware, max_body_bytes=settings.api_max_body_bytes, max_image_bytes=settings.api_max_image_bytes
    )
    service.add_asgi_middleware(MultipartGuardMiddleware)
    if settings.rate_limit_per_s is not None:
        limit = Limit(rate=settings.rate_limit_per_s, burst=settings.resolved_rate_limit_burst)
        buckets = RedisBuckets(
            limit, settings.redis_url, timeout_s=settings.redis_timeout_s, workers=settings.api_workers
        )
        service.add_asgi_middleware(RateLimitMiddleware, buckets=buckets, by_key=settings.api_require_key)
    service.add_asgi_middleware(InFlightLimitMiddleware, max_in_flight=settings.api_max_in_flight)
    if settings.api_cheap_first_hold_ms:
        service.add_asgi_middleware(CheapFirstMiddleware, hold_s=settings.api_cheap_first_hold_ms / 1000)
    if settings.api_fast_lane:
        service.add_asgi_middleware(FastLaneMiddleware, lane=fast_lane)
