"""Request context for every route: a request id, the API key check, and one structured log line.

- `X-Request-ID`: kept when the client sends one (so a request can be followed across systems), otherwise
  made; returned on the response and attached to every log line written while handling the request.
- `X-API-Key`: when `API_REQUIRE_KEY` is on, required on `/api/v1/*` (and on cache invalidation) and
  compared in constant time against each configured key; health, live, ready, status and metrics stay open.
- Logs are JSON, one object per line, and never contain keys, connection strings or passwords.
"""

from __future__ import annotations

import contextvars
import hmac
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.errors import Unauthorized

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("vitrine_request_id", default=None)
PROTECTED_PREFIX = "/api/v1/"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SECRETS = re.compile(r"(?i)(://[^:/@\s]+:)[^@\s]+(@)|((?:api[_-]?key|password|secret)[\"'=:\s]+)[^\s,\"'}]+")

access_log = logging.getLogger("vitrine.access")


def redact(text: str) -> str:
    """Blank out passwords in URLs and anything that looks like a key or password assignment."""
    return _SECRETS.sub(lambda m: f"{m.group(1)}***{m.group(2)}" if m.group(1) else f"{m.group(3)}***", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for field in ("method", "path", "status", "duration_ms"):
            if hasattr(record, field):
                entry[field] = getattr(record, field)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """JSON lines for vitrine's own loggers (BentoML keeps its own format for its loggers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("vitrine")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, require_key: bool, api_keys: list[str]) -> None:
        self.app = app
        self.require_key = require_key
        self.api_keys = [key.encode() for key in api_keys]

    def _key_ok(self, presented: bytes | None) -> bool:
        if presented is None:
            return False
        # Compare against every key (no early exit), each in constant time.
        return any([hmac.compare_digest(presented, key) for key in self.api_keys])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        path: str = scope.get("path", "")
        try:
            if self.require_key and _protected(path, scope.get("method", "GET")) and not self._key_ok(
                headers.get(b"x-api-key")
            ):
                await _unauthorized(send_with_id, missing=b"x-api-key" not in headers)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            if not path.startswith(("/metrics", "/health", "/live", "/ready", "/livez", "/readyz", "/healthz")):
                access_log.info(
                    "%s %s %s",
                    scope.get("method"),
                    path,
                    status,
                    extra={
                        "method": scope.get("method"),
                        "path": path,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)


def _protected(path: str, method: str) -> bool:
    """The API and anything that changes state; probes, metrics and read-only operator pages stay open."""
    return path.startswith(PROTECTED_PREFIX) or (path.startswith("/cache") and method != "GET")


async def _unauthorized(send: Send, *, missing: bool) -> None:
    refusal = Unauthorized("missing X-API-Key header" if missing else "invalid API key", field="X-API-Key")
    body = json.dumps(refusal.to_body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status_code,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"ApiKey")],
        }
    )
    await send({"type": "http.response.body", "body": body})
