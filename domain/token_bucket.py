"""The token bucket behind the API's rate limits: pure arithmetic, no clock and no storage.

A bucket holds up to `burst` tokens and gains `rate` tokens a second; a request takes its cost in tokens or is
refused and takes none. A request costs one token; a bulk request one per item (`POST /api/v1/search/batch` of
N queries costs N), so a batch is limited as the N single requests it replaces. So a client may send `burst`
requests at once and `rate` a second after that: over a window of `t` seconds at most `burst + rate * t`
requests (items) get through, and a request costing more than `burst` never does.

The same arithmetic runs in two places: `adapters/rate_limit.py` runs it as a Lua script inside Redis (one
bucket per client shared by every API worker) and, while Redis is down, per worker in process with
`LocalBuckets`. `Decision` turns the bucket's state into the `RateLimit-*` and `Retry-After` headers.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens a second
    burst: int  # bucket size

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: float  # tokens left after this request
    limit: Limit
    cost: int = 1  # tokens the request costs in all: a retry of it needs that many

    @property
    def retry_after_s(self) -> int:
        """Whole seconds until the bucket holds the request's cost again (0 when allowed): HTTP's Retry-After
        takes whole seconds."""
        if self.allowed:
            return 0
        return max(1, math.ceil((self.cost - self.remaining) / self.limit.rate))

    @property
    def reset_s(self) -> int:
        """Whole seconds until the bucket is full again (RateLimit-Reset)."""
        return max(0, math.ceil((self.limit.burst - self.remaining) / self.limit.rate))

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"ratelimit-limit", str(self.limit.burst).encode()),
            (b"ratelimit-remaining", str(max(0, math.floor(self.remaining))).encode()),
            (b"ratelimit-reset", str(self.reset_s).encode()),
        ]
        if not self.allowed:
            headers.append((b"retry-after", str(self.retry_after_s).encode()))
        return headers


def refill(tokens: float, elapsed_s: float, limit: Limit) -> float:
    """The tokens in a bucket `elapsed_s` seconds after it held `tokens` (a clock going back adds nothing)."""
    return min(float(limit.burst), tokens + max(0.0, elapsed_s) * limit.rate)


def take(tokens: float, elapsed_s: float, limit: Limit, cost: int = 1) -> tuple[float, bool]:
    """(tokens left, allowed) for a request of `cost` tokens arriving `elapsed_s` after the bucket last held
    `tokens`: all of the cost is taken, or none of it."""
    if cost < 1:
        raise ValueError("a request costs at least one token")
    current = refill(tokens, elapsed_s, limit)
    if current >= cost:
        return current - cost, True
    return current, False


class LocalBuckets:
    """One bucket per client in this process; the least recently seen clients are forgotten past `capacity`.

    Used while Redis cannot be reached, so the limit then holds per API worker rather than not at all.
    """

    def __init__(self, limit: Limit, *, capacity: int = 10_000) -> None:
        self.limit = limit
        self.capacity = capacity
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def take(self, client: str, now: float, cost: int = 1) -> Decision:
        tokens, at = self._buckets.pop(client, (float(self.limit.burst), now))
        tokens, allowed = take(tokens, now - at, self.limit, cost)
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.capacity:
            self._buckets.popitem(last=False)
        return Decision(allowed=allowed, remaining=tokens, limit=self.limit, cost=cost)
