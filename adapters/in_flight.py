"""A bound on the requests one API worker handles at once (`API_MAX_IN_FLIGHT`).

Past the bound a request is answered 503 with `Retry-After` at once, so an overload shows as fast refusals a
client (or load balancer) can retry elsewhere, instead of a queue in which every request waits seconds.
Probes and metrics are not counted and never refused: an overloaded worker is alive, and says so.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.http_errors import send_json
from adapters.metrics import EDGE_REFUSED

UNBOUNDED_PATHS = ("/health", "/live", "/ready", "/metrics", "/livez", "/readyz", "/healthz")


class InFlightLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(UNBOUNDED_PATHS):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            EDGE_REFUSED.labels(reason="in_flight").inc()
            await send_json(
                send,
                503,
                {
                    "error": "Overloaded",
                    "detail": f"this worker is handling {self.in_flight} requests, its limit; retry shortly",
                    "retryable": True,
                },
                [(b"retry-after", b"1")],
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
