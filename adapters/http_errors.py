"""Turning failures into HTTP answers: one place, one JSON shape (`error`, `detail`, and `field` where known)."""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from domain.errors import DependencyDown, VitrineError

log = logging.getLogger("vitrine.api")


def error_response(exc: VitrineError) -> JSONResponse:
    headers = {"Retry-After": "1"} if isinstance(exc, DependencyDown) else None
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=headers)


def unexpected_error_response(exc: BaseException) -> JSONResponse:
    """The last resort: still JSON, logged with its traceback."""
    log.exception("unexpected error", exc_info=exc)
    return JSONResponse({"error": "InternalError", "detail": "unexpected error; see the server log"}, status_code=500)
