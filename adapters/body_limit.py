"""Request bodies at the edge: a size cap (`API_MAX_BODY_BYTES`, `API_MAX_IMAGE_BYTES` for image uploads),
checked before the body is read whole.

- A declared `Content-Length` over the cap is a 413 at once; the body is never read.
- A body without one (chunked) is counted as it streams in; past the cap the app is told the client went away,
  whatever it had started to answer is dropped, and the client gets the 413.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.http_errors import send_json

IMAGE_PATH = "/api/v1/search/image"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_image_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_image_bytes = max_image_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        cap = self.max_image_bytes if scope.get("path") == IMAGE_PATH else self.max_body_bytes
        declared = next((value for name, value in scope.get("headers") or [] if name == b"content-length"), None)
        if declared is not None:
            if not declared.isdigit():
                await send_json(
                    send, 400, {"error": "InvalidRequest", "detail": "bad Content-Length", "field": "Content-Length"}
                )
                return
            if int(declared) > cap:
                await _too_large(send, cap)
                return
            await self.app(scope, receive, send)  # the server itself stops at the declared length
            return
        await self._counted(scope, receive, send, cap)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, cap: int) -> None:
        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # the app's answer to a body it never got whole; the 413 below replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _too_large(send, cap)


async def _too_large(send: Send, cap: int) -> None:
    await send_json(
        send,
        413,
        {"error": "PayloadTooLarge", "detail": f"the request body is over the limit of {cap} bytes", "field": "body"},
    )
