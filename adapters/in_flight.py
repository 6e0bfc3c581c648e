"""The requests one API worker handles at once: bounded (`API_MAX_IN_FLIGHT`), and counted for background work.

Past the bound a request is answered 503 with `Retry-After` at once, so an overload shows as fast refusals a
client (or load balancer) can retry elsewhere, instead of a queue in which every request waits seconds.
Probes and metrics are not counted and never refused: an overloaded worker is alive, and says so.

The same count tells background work (profile recomputes, cache warming) when the worker is between
requests: work that answers nobody waits for that, up to a bound, rather than landing in the middle of a wave
of requests and taking turns on the event loop with every one of them.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.http_errors import send_json
from adapters.metrics import EDGE_REFUSED

UNBOUNDED_PATHS = ("/health", "/live", "/ready", "/metrics", "/livez", "/readyz", "/healthz")


class RequestsInFlight:
    """A count of this worker's requests (all those in flight here; those in their cheap phase in
    adapters/cheap_first.py), and a bounded wait for it to come down to none."""

    def __init__(self) -> None:
        self.count = 0
        self._none = asyncio.Event()
        self._none.set()

    def enter(self) -> None:
        self.count += 1
        self._none.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._none.set()

    async def until_none(self, *, at_most: float) -> None:
        """Return when no request is in flight, or after `at_most` seconds if requests keep coming."""
        if self.count == 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none.wait(), timeout=at_most)


REQUESTS = RequestsInFlight()  # per process, so per API worker: the middleware counts, background work reads
QUIET_WAIT_S = 2.0  # under sustained load a worker may never be quiet: background work goes ahead after this


async def until_quiet() -> None:
    """For background work of this worker: wait until it is between requests, at most `QUIET_WAIT_S`."""
    await REQUESTS.until_none(at_most=QUIET_WAIT_S)


class InFlightLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_in_flight: int, requests: RequestsInFlight = REQUESTS) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(UNBOUNDED_PATHS):
            await self.app(scope, receive, send)
            return
        if self.requests.count >= self.max_in_flight:
            EDGE_REFUSED.labels(reason="in_flight").inc()
            await send_json(
                send,
                503,
                {
                    "error": "Overloaded",
                    "detail": f"this worker is handling {self.requests.count} requests, its limit; retry shortly",
                    "retryable": True,
                },
                [(b"retry-after", b"1")],
            )
            return
        self.requests.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.requests.leave()
