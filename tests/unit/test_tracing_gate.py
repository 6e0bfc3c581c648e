"""OpenTelemetry's ASGI middleware only where a span can be exported (runners/serving.py).

The app is built as BentoML builds a service's app: a Starlette app with `Middleware(OpenTelemetryMiddleware, ...)`
looked up from OpenTelemetry's module when the app is built; requests go through httpx's ASGI transport.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from bentoml._internal.configuration.containers import BentoMLContainer
from opentelemetry.instrumentation import asgi
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from runners import serving


@pytest.fixture
def exporter_type() -> Iterator[None]:
    """Whatever a test sets as BentoML's trace exporter is put back after it."""
    setting = BentoMLContainer.config.tracing.exporter_type
    before = setting.get()
    yield
    setting.set(before)


async def served_spans() -> tuple[int, list[str]]:
    """One request through an app built now, as BentoML builds it: (its status, the names of the spans it made)."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))

    async def hello(_request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(
        routes=[Route("/hello", hello)],
        middleware=[Middleware(asgi.OpenTelemetryMiddleware, tracer_provider=provider)],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vitrine") as client:
        response = await client.get("/hello")
    return response.status_code, [span.name for span in spans.get_finished_spans()]


async def test_without_an_exporter_requests_make_no_spans(exporter_type: None) -> None:
    assert serving.trace_only_with_an_exporter()
    BentoMLContainer.config.tracing.exporter_type.set(None)  # BentoML's default
    assert await served_spans() == (200, [])


async def test_with_an_exporter_requests_are_traced_as_bentoml_ships_it(exporter_type: None) -> None:
    assert serving.trace_only_with_an_exporter()
    assert serving.trace_only_with_an_exporter()  # idempotent: the gate is not wrapped in a second gate
    BentoMLContainer.config.tracing.exporter_type.set("otlp")
    status, spans = await served_spans()
    assert status == 200
    assert "GET /hello" in spans and len(spans) == 3  # the request's span and one per ASGI send
