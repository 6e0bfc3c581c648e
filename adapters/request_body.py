"""A request's whole body read in ASGI middleware, and handed on to the app as if it had never been read.

The edge middleware that must see a body before the app does (adapters/multipart_guard.py, adapters/fast_lane.py)
read it here: the body's messages are kept, so the app that runs after them receives the same messages, chunk
for chunk, and then the client's own `receive` (for its disconnect).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Message, Receive, Scope


@dataclass(frozen=True)
class ReadBody:
    body: bytes | None  # None: the client left, or the body limit cut it off (and answered 413 itself)
    replay: Receive  # what the app after the reader receives: the same messages, then the client's receive


async def read_body(receive: Receive) -> ReadBody:
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    pending = iter(messages)

    async def replay() -> Message:
        return next(pending, None) or await receive()

    if messages[-1]["type"] != "http.request":
        return ReadBody(None, replay)
    return ReadBody(b"".join(message.get("body", b"") for message in messages), replay)


def content_type(scope: Scope) -> bytes | None:
    """The request's Content-Type header as sent, or None without one."""
    return next((value for name, value in scope.get("headers") or [] if name == b"content-type"), None)
