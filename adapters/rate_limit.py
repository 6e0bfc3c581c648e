"""Rate limits on the API (`RATE_LIMIT_PER_S`, `RATE_LIMIT_BURST`): a token bucket per client, shared by every
API worker through Redis, in process per worker while Redis is down.

A client is its API key when keys are required (only a digest of it is stored), otherwise its address. Only
`/api/v1/*` is limited: probes, metrics and operator pages are not. Every limited answer carries
`RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset`; a refused one is a 429 with `Retry-After` and the
JSON error body, answered before the request body is read.

A bulk request costs one token per item, as the N single requests it replaces would. Its size is only known
once the body is read, so the cost is taken in two steps: the middleware takes one token at the door, like any
request, and the endpoint, with its items counted, takes the rest (`charge_items`) from the same client's
bucket, through the `RequestCharge` the middleware leaves in a context variable for the request's handling (a
BentoML handler sees the ASGI scope only through a `ctx` parameter, and taking `ctx` makes BentoML override the
status code of every Response the handler returns with ctx's, 200). Refused there, it is the same 429 (same
headers, same body). A batch costing more than the burst could never pass, however long the client
waits: it is a 400 naming the list's field and the limit, as a batch over the endpoint's own maximum is.
(While Redis is down, a worker's bucket holds only its share of the burst: a batch within the burst but over
that share is a 429 until Redis answers again, not a 400, since it will pass then.)

The bucket's arithmetic is domain/token_bucket.py; here it runs as one Lua script, so a read-refill-take is
atomic across workers, with Redis's own clock (`TIME`), so workers' clocks need not agree.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.cache import reconnect_once, within
from adapters.http_errors import send_json
from domain.errors import InvalidRequest, TooManyRequests
from domain.token_bucket import Decision, Limit, LocalBuckets

log = logging.getLogger("vitrine.rate_limit")

LIMITED_PREFIX = "/api/v1/"
KEY_PREFIX = "vitrine:ratelimit:"
REDIS_RETRY_AFTER_S = 1.0
REDIS_MIN_TIMEOUT_S = 1.0  # after a Redis failure, buckets are local for this long before Redis is tried again

# The same arithmetic as domain/token_bucket.take: all of the cost or none of it, in one atomic step; returns
# {allowed, tokens left} (tokens as a string: Lua numbers come back to the client as integers otherwise).
TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
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
if tokens >= cost then
  tokens = tokens - cost
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
        # Not the cache's 0.25 s: a false outage would hand every worker a bucket of its own for a second.
        self._bound_s = max(timeout_s, REDIS_MIN_TIMEOUT_S)
        self._client: Redis | None = None
        self._script: Any = None
        self._down_until = 0.0

    def _connect(self) -> Any:
        # Made on first use, inside the worker's event loop.
        if self._script is None:
            assert self._redis_url is not None
            # No socket timeout: `take` bounds each call with `within`, as the cache does (adapters/cache.py: a socket
            # timeout costs a task and a turn of the event loop per command).
            self._client = Redis.from_url(
                self._redis_url,
                socket_timeout=None,
                socket_connect_timeout=self._bound_s,
                retry_on_timeout=False,
                **reconnect_once(),  # not every worker limiting on its own for a second after a Redis restart
            )
            self._script = self._client.register_script(TAKE_SCRIPT)
        return self._script

    async def take(self, client: str, cost: int = 1) -> Decision:
        """Take `cost` tokens (at least one) from the client's bucket, or none when it holds fewer."""
        now = time.monotonic()
        if self._redis_url is None or now < self._down_until:
            return self.local.take(client, now, cost)
        script = self._connect()
        try:
            allowed, tokens = await within(
                self._bound_s,
                lambda: script(keys=[KEY_PREFIX + client], args=[repr(self.limit.rate), self.limit.burst, cost]),
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = now + REDIS_RETRY_AFTER_S
            log.warning("rate limit: Redis failed (%s: %s); limiting per worker for now", type(exc).__name__, exc)
            return self.local.take(client, now, cost)
        return Decision(allowed=bool(allowed), remaining=float(tokens), limit=self.limit, cost=cost)


class RequestCharge:
    """One request's standing with its client's bucket: what the door took, and, for a bulk request, the rest.

    `decision` is the latest answer from the bucket; the middleware writes its `RateLimit-*` headers on the
    response, so a bulk request's answer shows what is left after all of its items.
    """

    def __init__(self, buckets: RedisBuckets, client: str, at_the_door: Decision) -> None:
        self.buckets = buckets
        self.client = client
        self.decision = at_the_door

    async def charge_items(self, items: int, *, field: str) -> None:
        """Charge a bulk request of `items` items the `items - 1` tokens the door did not take, atomically.

        Raises InvalidRequest (400, naming `field`) for a batch costing more than the burst: no wait would let
        it through, so a retryable 429 would have the client retry for ever. Raises TooManyRequests (429) when
        the bucket cannot cover the rest now; the door's token stays spent (the request was admitted and
        read), and Retry-After counts the whole batch, so a retry after it finds `items` tokens, the door's
        one and the rest.
        """
        burst = self.buckets.limit.burst
        if items > burst:
            raise InvalidRequest(
                f"a batch of {items} costs {items} requests against the rate limit, more than its burst of "
                f"{burst} (RATE_LIMIT_BURST), so it could never pass: send at most {burst} per batch",
                field=field,
            )
        if items <= 1:
            return
        # The take is of the rest, but a retry pays the door again: the refusal's Retry-After waits for all of it.
        self.decision = dataclasses.replace(await self.buckets.take(self.client, items - 1), cost=items)
        if not self.decision.allowed:
            raise refusal(self.decision)


# The RequestCharge of the request being handled, for a bulk endpoint to charge its items.
request_charge: contextvars.ContextVar[RequestCharge | None] = contextvars.ContextVar(
    "vitrine_rate_limit_charge", default=None
)


async def charge_items(items: int, *, field: str) -> None:
    """A bulk endpoint's cost, once it has counted its items: one token per item, `field` naming the list.

    Nothing to do when rate limits are off, or for a path they do not cover (no RequestCharge)."""
    charge = request_charge.get()
    if charge is not None:
        await charge.charge_items(items, field=field)


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
        client = client_identity(scope, by_key=self.by_key)
        decision = await self.buckets.take(client)
        if not decision.allowed:
            await send_json(send, 429, refusal(decision).to_body(), decision.headers())
            return
        charge = RequestCharge(self.buckets, client, decision)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *charge.decision.headers()]
            await send(message)

        handling = request_charge.set(charge)  # for a bulk endpoint to charge the rest of its cost
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            request_charge.reset(handling)


def refusal(decision: Decision) -> TooManyRequests:
    """The 429's error, the same whether the door or a bulk endpoint refused; its headers are decision.headers()."""
    cost = f"; this request costs {decision.cost}" if decision.cost > 1 else ""
    return TooManyRequests(
        f"rate limit of {decision.limit.rate:g}/s (burst {decision.limit.burst}) exceeded{cost}; "
        f"retry in {decision.retry_after_s}s"
    )
