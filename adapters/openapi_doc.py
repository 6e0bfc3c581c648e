"""The served OpenAPI document (`GET /docs.json`), made true to what the API answers and valid as OpenAPI 3.0.

BentoML writes the document (OpenAPI 3.0.2) from pydantic's JSON Schema, which is 2020-12 flavoured; this
middleware fixes it up once per worker and serves the result from then on:

- `exclusiveMinimum: 0` (a number, JSON Schema 2020-12) becomes `minimum: 0, exclusiveMinimum: true` (3.0), and
  likewise for `exclusiveMaximum`, so validators and client generators accept the document;
- every operation documents the answers the edge and the error mapping give, each with the JSON error body:
  400 bad input, 401 missing or unknown key, 403 not an operator key, 404 unknown entity, 413 body too large,
  429 rate limited (with its headers), 503 dependency down or worker overloaded (retryable, `Retry-After`);
- the `X-API-Key` header is declared as the API's security scheme.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOC_PATH = "/docs.json"
ERROR_SCHEMA = "VitrineError"
ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "title": ERROR_SCHEMA,
    "description": "Every refusal and failure: the error's name, what went wrong, and the field concerned.",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "InvalidRequest, NotFound, PayloadTooLarge, ..."},
        "detail": {"description": "What went wrong: a sentence, or the list of validation errors"},
        "field": {"type": "string", "description": "The request field or header the error concerns"},
        "dependency": {"type": "string", "description": "503: the part that is down (database, encoder, ...)"},
        "retryable": {"type": "boolean", "description": "true: the same request may succeed shortly"},
    },
    "additionalProperties": True,
}
_INT_HEADER = {"schema": {"type": "integer", "minimum": 0}}
ERROR_RESPONSES: dict[str, tuple[str, dict[str, Any]]] = {
    "400": ("Invalid request: the body or a parameter is not acceptable (`field` names it)", {}),
    "401": ("Missing or unknown X-API-Key", {}),
    "403": ("A valid API key, but this route needs an operator key", {}),
    "404": ("A named entity (a product) does not exist", {}),
    "413": ("The request body is over API_MAX_BODY_BYTES (API_MAX_IMAGE_BYTES for images)", {}),
    "429": (
        "Over the rate limit (a bulk request counts one request per item); retry after `Retry-After` seconds",
        {
            "Retry-After": _INT_HEADER,
            "RateLimit-Limit": _INT_HEADER,
            "RateLimit-Remaining": _INT_HEADER,
            "RateLimit-Reset": _INT_HEADER,
        },
    ),
    "503": (
        "A dependency is down or the worker is at its in-flight limit; retryable, after `Retry-After` seconds",
        {"Retry-After": _INT_HEADER},
    ),
}
METHODS = ("get", "post", "put", "delete", "patch")


def fix_document(doc: dict[str, Any]) -> dict[str, Any]:
    doc = _openapi_30(doc)
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {})[ERROR_SCHEMA] = ERROR_BODY
    components.setdefault("securitySchemes", {})["ApiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    for item in doc.get("paths", {}).values():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status, (description, headers) in ERROR_RESPONSES.items():
                response: dict[str, Any] = {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}},
                }
                if headers:
                    response["headers"] = headers
                responses[status] = response
    return doc


def _openapi_30(node: Any) -> Any:
    """JSON Schema 2020-12 spellings rewritten as OpenAPI 3.0 ones, depth first."""
    if isinstance(node, list):
        return [_openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    fixed = {key: _openapi_30(value) for key, value in node.items()}
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        bound = fixed.get(exclusive)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            fixed[inclusive] = bound
            fixed[exclusive] = True
    if fixed.get("type") == "file":  # BentoML's spelling of an upload
        fixed.update(type="string", format="binary")
    if "root_input" in fixed:  # a BentoML marker, not a schema keyword
        fixed["x-bentoml-root-input"] = fixed.pop("root_input")
    if "default" in fixed and fixed["default"] is None:
        # BentoML drops the null branch of an optional field and leaves `default: null`: it is nullable.
        del fixed["default"]
        fixed["nullable"] = True
        if "$ref" in fixed:  # a $ref's siblings are ignored in 3.0
            fixed["allOf"] = [{"$ref": fixed.pop("$ref")}]
    if "const" in fixed:
        fixed["enum"] = [fixed.pop("const")]
    if isinstance(fixed.get("type"), list):  # ["string", "null"]
        types = [t for t in fixed["type"] if t != "null"]
        if len(types) < len(fixed["type"]):
            fixed["nullable"] = True
        fixed["type"] = types[0] if len(types) == 1 else fixed["type"]
    for combiner in ("anyOf", "oneOf"):
        options = fixed.get(combiner)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [option for option in options if option != {"type": "null"}]
            fixed.pop(combiner)
            fixed["nullable"] = True
            if len(rest) == 1 and "$ref" not in rest[0]:
                fixed = {**rest[0], **fixed}
            else:
                fixed["allOf" if len(rest) == 1 else combiner] = rest
    if "examples" in fixed and isinstance(fixed["examples"], list) and "type" in fixed:
        examples = fixed.pop("examples")
        if examples:
            fixed["example"] = examples[0]
    return fixed


class OpenApiDocMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._document: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != DOC_PATH or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        if self._document is None:
            status, body = await _collect(self.app, scope, receive)
            if status != 200:
                await self.app(scope, receive, send)
                return
            self._document = json.dumps(fix_document(json.loads(body))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._document)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._document})


async def _collect(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[int, bytes]:
    status = 500
    parts: list[bytes] = []

    async def capture(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, receive, capture)
    return status, b"".join(parts)
