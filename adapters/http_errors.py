"""Turning failures into HTTP answers: one place, one JSON shape (`error`, `detail`, and `field` where known)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Send

from domain.errors import DependencyDown, VitrineError

log = logging.getLogger("vitrine.api")


def error_response(exc: VitrineError) -> JSONResponse:
    headers = {"Retry-After": "1"} if isinstance(exc, DependencyDown) else None
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=headers)


def unexpected_error_response(exc: BaseException) -> JSONResponse:
    """The last resort: still JSON, logged with its traceback."""
    log.exception("unexpected error", exc_info=exc)
    return JSONResponse({"error": "InternalError", "detail": "unexpected error; see the server log"}, status_code=500)


async def operator_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """The operator routes (FastAPI) answer bad input as the JSON API routes (BentoML) do: 400, with
    `detail[].loc` naming the field (FastAPI's own default is a 422, and its `loc` starts with "query")."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    detail = [
        {"type": error["type"], "loc": list(_field_path(error["loc"])), "msg": error["msg"]} for error in errors
    ]
    return JSONResponse({"error": f"{len(errors)} validation error for {request.url.path}", "detail": detail}, 400)


def _field_path(loc: Sequence[str | int]) -> Sequence[str | int]:
    """("query", "kind") -> ("kind",): where the field came from is the route's business, its name the client's."""
    return loc[1:] if loc and loc[0] in ("query", "path", "body", "header", "cookie") else loc


async def send_json(
    send: Send, status: int, body: dict[str, object], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer from ASGI middleware (before the app runs) with the same JSON error shape as the endpoints."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
