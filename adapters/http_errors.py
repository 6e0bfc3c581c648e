"""Turning failures into HTTP answers: one place, one JSON shape (`error`, `detail`, and `field` where known)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

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
