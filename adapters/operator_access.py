"""Operator-only routes (`OPERATOR_KEYS`, presented in the same `X-API-Key` header as API keys).

Whatever shows shoppers' data or changes state is for operators: `/cache/stats` (popular queries, active users),
`/performance` and `/performance/slow-queries` (queries and user ids), `DELETE /cache`, and the privacy erase
`DELETE /api/v1/users/{id}`. Without a key, or with an unknown one: 401; with a valid API key that is not an
operator key: 403. `/health`, `/live`, `/ready`, `/status` and `/metrics` stay open and hold no user data.

Installed when `OPERATOR_KEYS` is set or `API_REQUIRE_KEY` is on; with keys required and no operator key
configured, the operator routes are closed to everyone (a deployment that asked for keys does not leave its
shoppers' queries open because a second setting was forgotten). Operator keys are also valid API keys.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.http_errors import send_json

OPERATOR_PREFIXES = ("/cache", "/performance", "/api/v1/users/")


def is_operator_route(path: str) -> bool:
    return path.startswith(OPERATOR_PREFIXES)


def _matches(presented: bytes, keys: list[bytes]) -> bool:
    # Compare against every key (no early exit), each in constant time.
    return any([hmac.compare_digest(presented, key) for key in keys])


class OperatorAccessMiddleware:
    def __init__(self, app: ASGIApp, *, operator_keys: list[str], api_keys: list[str]) -> None:
        self.app = app
        self.operator_keys = [key.encode() for key in operator_keys]
        self.api_keys = [key.encode() for key in api_keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_operator_route(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        presented = next((value for name, value in scope.get("headers") or [] if name == b"x-api-key"), None)
        if presented is not None and _matches(presented, self.operator_keys):
            await self.app(scope, receive, send)
            return
        if presented is not None and _matches(presented, self.api_keys):
            detail = "this route needs an operator key" + ("" if self.operator_keys else " (OPERATOR_KEYS is not set)")
            await send_json(send, 403, {"error": "Forbidden", "detail": detail, "field": "X-API-Key"})
            return
        detail = "missing X-API-Key header" if presented is None else "invalid operator key"
        await send_json(
            send,
            401,
            {"error": "Unauthorized", "detail": detail, "field": "X-API-Key"},
            [(b"www-authenticate", b"ApiKey")],
        )
