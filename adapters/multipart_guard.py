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
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.http_errors import send_json
from adapters.request_body import content_type, read_body


class MultipartGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        sent_type = content_type(scope) or b""
        if not sent_type.lower().startswith(b"multipart/"):
            await self.app(scope, receive, send)
            return
        if b"boundary=" not in sent_type.lower():
            await _refuse(send, "a multipart body needs a boundary in its Content-Type header", "Content-Type")
            return
        read = await read_body(receive)
        if read.body is None:
            return  # the client went away, or the body limit cut it off (it answers 413 itself)
        problem = await _parse_problem(scope, read.body)
        if problem is not None:
            await _refuse(send, f"the multipart body is malformed: {problem}", "body")
            return
        await self.app(scope, read.replay, send)


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
