"""Rate limits on the API (`RATE_LIMIT_PER_S`, `RATE_LIMIT_BURST`): a token bucket per client, shared by every
API worker through Redis, in process per worker while Redis is down.

A client is its API key when keys are required (only a digest of it is stored), otherwise its address. Only
`/api/v1/*` is limited: probes, metrics and operator pages are not. Every limited answer carries
`RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset`; a refused one is a 429 with `Retry-After` and the
JSON error body, answered before the request body is read.

The bucket's arithmetic is domain/token_bucket.py; here it runs as one Lua script, so a read-refill-take is
atomic across workers, with Redis's own clock (`TIME`), so workers' clocks need not agree.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.http_errors import send_json
from domain.token_bucket import Decision, Limit, LocalBuckets

log = logging.getLogger("vitrine.rate_limit")

LIMITED_PREFIX = "/api/v1/"
KEY_PREFIX = "vitrine:ratelimit:"
REDIS_RETRY_AFTER_S = 1.0
REDIS_MIN_TIMEOUT_S = 1.0  # after a Redis failure, buckets are local for this long before Redis is tried again

# The same arithmetic as domain/token_bucket.take; returns {allowed, tokens left} (tokens as a string: Lua
# numbers come back to the client as integers otherwise).
TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisBuckets:
    """Buckets in Redis, falling back to per-worker buckets (LocalBuckets) while Redis cannot answer."""

    def __init__(self, limit: Limit, redis_url: str | None, *, timeout_s: float, workers: int = 1) -> None:
        self.limit = limit
        # Without Redis each worker keeps its share, so all of them together still hold about the limit.
        share = Limit(rate=limit.rate / workers, burst=max(1, limit.burst // workers))
        self.local = LocalBuckets(limit if redis_url is None else share)
        self._redis_url = redis_url
        self._timeout_s = timeout_s
        self._client: Redis | None = None
        self._script: Any = None
        self._down_until = 0.0

    def _connect(self) -> Any:
        # Made on first use, inside the worker's event loop.
        if self._script is None:
            assert self._redis_url is not None
            # Not the cache's 0.25 s: on a loaded machine the event loop alone can take that, and a false outage
            # would hand every worker a bucket of its own for a second.
            self._client = Redis.from_url(
                self._redis_url,
                socket_timeout=max(self._timeout_s, REDIS_MIN_TIMEOUT_S),
                socket_connect_timeout=max(self._timeout_s, REDIS_MIN_TIMEOUT_S),
                retry_on_timeout=False,
            )
            self._script = self._client.register_script(TAKE_SCRIPT)
        return self._script

    async def take(self, client: str) -> Decision:
        now = time.monotonic()
        if self._redis_url is None or now < self._down_until:
            return self.local.take(client, now)
        try:
            allowed, tokens = await self._connect()(
                keys=[KEY_PREFIX + client], args=[repr(self.limit.rate), self.limit.burst]
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = now + REDIS_RETRY_AFTER_S
            log.warning("rate limit: Redis failed (%s: %s); limiting per worker for now", type(exc).__name__, exc)
            return self.local.take(client, now)
        return Decision(allowed=bool(allowed), remaining=float(tokens), limit=self.limit)


def client_identity(scope: Scope, *, by_key: bool) -> str:
    if by_key:
        for name, value in scope.get("headers") or []:
            if name == b"x-api-key":
                return "key:" + hashlib.sha256(value).hexdigest()[:24]
    client = scope.get("client")
    return "addr:" + (client[0] if client else "unknown")


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, buckets: RedisBuckets, by_key: bool) -> None:
        self.app = app
        self.buckets = buckets
        self.by_key = by_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(LIMITED_PREFIX):
            await self.app(scope, receive, send)
            return
        decision = await self.buckets.take(client_identity(scope, by_key=self.by_key))
        headers = decision.headers()
        if not decision.allowed:
            await _too_many_requests(send, decision, headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _too_many_requests(send: Send, decision: Decision, headers: list[tuple[bytes, bytes]]) -> None:
    detail = (
        f"rate limit of {decision.limit.rate:g}/s (burst {decision.limit.burst}) exceeded; "
        f"retry in {decision.retry_after_s}s"
    )
    await send_json(send, 429, {"error": "TooManyRequests", "detail": detail, "retryable": True}, headers)
