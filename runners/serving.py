"""What vitrine sets on the BentoML services it runs, in one place (the facts behind each are in loadtests/README.md).

- `RUNNER_CONNECTION` is read by the *caller's* client for a service: BentoML's default recycles the connection
  every 100 requests, which under load turned into bursts of 500s.
- `fix_output_media_types`: for an API whose output is root-typed (a list or an array, as every batchable API's
  is), BentoML 1.4 builds the output model's JSON schema again on every response just to pick the response's
  Content-Type (`IOMixin.mime_type`), unless the output spec names its media type. The py-spy profile of the
  index service put that at 9% of its samples. The caller's client decodes with its own serde, whatever the
  header says, so naming it changes nothing on the wire.
- `trace_only_with_an_exporter`: BentoML wraps every service's app in OpenTelemetry's ASGI middleware, which builds
  each request's span attributes and three spans (the request's, and one per ASGI `send`) even when BentoML has no
  trace exporter (`tracing.exporter_type`, unset by default) and so no span can ever leave the process. A py-spy
  profile of the API worker put it at 14-20% of its samples for a cached search or a recommendation
  (loadtests/README.md). Without an exporter the middleware is left out; with one, tracing works as BentoML ships
  it. What goes with it: BentoML's `X-BentoML-Request-ID` header and the trace ids in its log lines (vitrine's
  own `X-Request-ID` and access line stay).
- `settle_gc_after_startup`: a service's startup leaves hundreds of thousands of long-lived objects (modules, the
  model's or the index's wrappers, pydantic and SQLAlchemy's structures, query understanding's lexicons), and
  every full collection of CPython's cyclic GC walks them all. Under the mix the API worker ran one every ~9 s,
  ~150 ms long, with its event loop stopped: a whole wave of requests waited behind it (loadtests/README.md).
  Frozen after startup, they are left out of every later collection; reference counting still frees them.
  Then the youngest generation is collected once 50,000 more containers are alive than at the last
  collection, not CPython's 700: the requests in flight hold a few thousand at their peak (parsed JSON, a page's
  products, pydantic models), so at 700 a worker ran young collections over and over, each walking objects that
  reference counting was about to free anyway. CPU per request fell 8-15% in the API worker, 7% in the encoder
  and 4% in the index (loadtests/README.md).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

log = logging.getLogger("vitrine.serving")

RUNNER_CONNECTION: dict[str, Any] = {"max_requests": 1_000_000_000, "max_age": 86400.0}

# `--timeout-keep-alive` of every server vitrine starts (the Makefile, the Kubernetes manifests, `vitrine topology`,
# the load runs): idle connections stay open longer than any client in front keeps one idle (a load balancer's
# 60 s, BentoML's runner clients' 15 s), so the client closes first. At uvicorn's 5 s a request could go out on a
# connection the server was closing that instant: a load run's shopper, idle over 5 s, got "connection closed".
KEEP_ALIVE_S = 75
SERVER_FLAGS = ("--timeout-keep-alive", str(KEEP_ALIVE_S))  # what every `bentoml serve` / `start-http-server` gets


def fix_output_media_types(service: Any) -> None:
    """Name the media type of every API's output, so BentoML stops deriving it from the schema per response."""
    for api in service.apis.values():
        if api.output_spec is not None and api.output_spec.media_type is None:
            api.output_spec.media_type = "application/json"


# The cyclic GC collects its youngest generation once container allocations outnumber frees by this much
# (CPython's default, 700, is passed again and again by the requests in flight).
YOUNG_COLLECTION_THRESHOLD = 50_000


def settle_gc_after_startup() -> None:
    """Collect once, then move everything alive into CPython's permanent generation (`gc.freeze`), so later
    collections walk only what the service allocates while it serves, and collect the youngest generation far less
    often. Call it once startup is done."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def trace_only_with_an_exporter() -> bool:
    """Make OpenTelemetry's ASGI middleware a pass-through in this process while no trace exporter is configured
    (decided when each app is built, from BentoML's configuration then). Idempotent; False if the libraries have
    changed and the middleware is left as it is."""
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer
        from opentelemetry.instrumentation import asgi

        shipped = asgi.OpenTelemetryMiddleware
        BentoMLContainer.config.tracing.exporter_type  # noqa: B018 - checked to exist: the factory reads it
    except (ImportError, AttributeError) as exc:
        log.warning("BentoML's tracing has changed (%s); OpenTelemetry's middleware stays on every request", exc)
        return False
    if getattr(shipped, "vitrine_gate", False):
        return True

    def middleware(app: Any, **options: Any) -> Any:
        """What BentoML's `Middleware(OpenTelemetryMiddleware, ...)` now builds: the app itself, or the shipped
        middleware around it when an exporter is configured."""
        if BentoMLContainer.config.tracing.exporter_type.get() is None:
            return app
        return shipped(app, **options)

    middleware.vitrine_gate = True  # type: ignore[attr-defined]
    asgi.OpenTelemetryMiddleware = middleware  # type: ignore[assignment,misc]
    return True
