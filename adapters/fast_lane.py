"""The shop's busiest routes answered without BentoML's per-request dispatch (`API_FAST_LANE`).

An `@bentoml.api` request goes through BentoML's context and exception middleware and Starlette's router, then
`api_endpoint`, which binds the method anew for every request (dependency injection and `inspect.signature`),
validates the body, and sends the answer as a body iterator (two sends). Measured on this box, a service building
a 20-product page with 25 requests in flight: 0.47-0.59 ms of API CPU per request through an `@bentoml.api` route,
0.40-0.44 through a plain Starlette route mounted in the same service (loadtests/README.md, fourteenth session).
In a bunched wave of the shop's mix the API worker's event loop is what every request waits for, and its CPU
per request is what the wave costs.

So the innermost edge middleware serves a POST to one of the listed routes itself, once the service has started:
it validates the JSON body with the model the handler declares, calls the same handler BentoML would call, and
answers what the handler returns as BentoML would (the model's JSON; a `Response` as it is), in one send with a
Content-Length; an exception the handler lets out is vitrine's JSON 500. Everything else goes on to BentoML
untouched: another route or method, another content type, a request before startup, and a body the model
refuses (its bytes replayed), so a bad request still gets BentoML's own 400 naming the field, and the OpenAPI
document still comes from the `@bentoml.api` declarations.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.http_errors import unexpected_error_response
from adapters.request_body import content_type, read_body

JSON = b"application/json"


@dataclass(frozen=True)
class _Route:
    model: type[BaseModel]
    handler: Callable[[Any], Awaitable[Any]]


class FastLane:
    """The routes the middleware serves, filled in once the service instance has started."""

    def __init__(self, *, server_header: str) -> None:
        self._routes: dict[str, _Route] = {}
        self._server = server_header.encode()

    def open(self, instance: object, apis: Iterable[Any]) -> None:
        """Serve these `@bentoml.api` methods of `instance` (BentoML's `APIMethod`s: `.route`, `.func`); each must
        take one positional pydantic model, as `search(self, request: SearchRequest, /)` does."""
        routes = {}
        for api in apis:
            parameters = list(inspect.signature(api.func).parameters.values())[1:]
            hints = typing.get_type_hints(api.func)
            model = hints.get(parameters[0].name) if len(parameters) == 1 else None
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise TypeError(f"{api.name}: the fast lane serves handlers of one pydantic model only")
            handler = api.func.__get__(instance)  # the plain bound function: no BentoML binding per request
            routes[api.route] = _Route(model, handler)
        self._routes = routes

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(self._routes)

    def route_for(self, scope: Scope) -> _Route | None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        return self._routes.get(scope["path"])

    async def answer(self, result: Any, scope: Scope, receive: Receive, send: Send) -> None:
        if isinstance(result, Response):  # an error answer, or one with headers of its own
            await result(scope, receive, send)
            return
        body = result.model_dump_json().encode() if isinstance(result, BaseModel) else to_json(result)
        headers = [
            (b"content-type", JSON),
            (b"content-length", str(len(body)).encode()),
            (b"server", self._server),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class FastLaneMiddleware:
    def __init__(self, app: ASGIApp, *, lane: FastLane) -> None:
        self.app = app
        self.lane = lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.lane.route_for(scope)
        if route is None or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        read = await read_body(receive)
        if read.body is None:  # the client left before it finished sending: nobody to answer
            return
        try:
            parsed = route.model.model_validate_json(read.body or b"{}")
        except ValidationError:  # BentoML answers it, with the 400 every other route gives
            await self.app(scope, read.replay, send)
            return
        try:
            result = await route.handler(parsed)
        except Exception as exc:  # handlers map their failures to JSON; anything else is still a JSON 500
            result = unexpected_error_response(exc)
        await self.lane.answer(result, scope, receive, send)


def _is_json(scope: Scope) -> bool:
    sent_type = content_type(scope)
    if sent_type is None:
        return True  # BentoML reads a body without a content type as JSON
    return sent_type.split(b";", 1)[0].strip().lower() == JSON
