"""One exception hierarchy for everything the API can refuse or fail at.

    VitrineError                  base; never escapes as a 500
    ├── InvalidRequest      400   the request is well-formed JSON but asks for something impossible
    ├── NotFound            404   a named product (or other entity) does not exist
    ├── TooManyRequests     429   over the client's rate limit; retry after `Retry-After` seconds
    ├── Unauthorized        401   missing or unknown X-API-Key
    ├── Unsupported         400   the loaded model cannot do what was asked (image search on a text model)
    └── DependencyDown      503   the database, the encoder or the index cannot answer right now; retry

Each carries the `field` it concerns where there is one, so the client can point at it. The mapping to HTTP
status codes lives here and only here (`status_code`), and `service.py` turns any of them into a JSON body.
"""

from __future__ import annotations


class VitrineError(Exception):
    status_code = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_body(self) -> dict[str, object]:
        body: dict[str, object] = {"error": type(self).__name__, "detail": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidRequest(VitrineError):
    status_code = 400


class Unsupported(VitrineError):
    status_code = 400


class Unauthorized(VitrineError):
    status_code = 401


class NotFound(VitrineError):
    status_code = 404


class TooManyRequests(VitrineError):
    status_code = 429

    def to_body(self) -> dict[str, object]:
        return {**super().to_body(), "retryable": True}


class DependencyDown(VitrineError):
    status_code = 503

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(f"{dependency} unavailable: {message}")
        self.dependency = dependency

    def to_body(self) -> dict[str, object]:
        return {**super().to_body(), "dependency": self.dependency, "retryable": True}
