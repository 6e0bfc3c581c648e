"""Multipart bodies checked at the edge, so a malformed upload is a 400 naming the problem, never a 500.

BentoML parses `multipart/form-data` (image search, or any route a client sends a form to) with Starlette's
parser, and turns the parser's refusal into a 500. Here the body is parsed first with that same parser (it is
already capped by adapters/body_limit.py, which sits before this): a missing boundary or a body the parser
refuses is a 400 with the JSON error body; a good one is handed on to the app byte for byte.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.http_errors import send_json


class MultipartGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        content_type = next((value for name, value in scope.get("headers") or [] if name == b"content-type"), b"")
        if not content_type.lower().startswith(b"multipart/"):
            await self.app(scope, receive, send)
            return
        if b"boundary=" not in content_type.lower():
            await _refuse(send, "a multipart body needs a boundary in its Content-Type header", "Content-Type")
            return
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        if messages[-1]["type"] == "http.disconnect":
            return  # the client went away, or the body limit cut it off (it answers 413 itself)
        problem = await _parse_problem(scope, b"".join(m.get("body", b"") for m in messages))
        if problem is not None:
            await _refuse(send, f"the multipart body is malformed: {problem}", "body")
            return
        pending = iter(messages)

        async def replay() -> Message:
            return next(pending, None) or await receive()

        await self.app(scope, replay, send)


async def _parse_problem(scope: Scope, body: bytes) -> str | None:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        form = await MultiPartParser(Headers(scope=scope), stream()).parse()
    except MultiPartException as exc:
        return exc.message
    for value in form.values():
        if isinstance(value, UploadFile):
            await value.close()
    return None


async def _refuse(send: Send, detail: str, field: str) -> None:
    await send_json(send, 400, {"error": "InvalidRequest", "detail": detail, "field": field})
