"""Refuses request bodies over 64 KiB before they are read into memory."""
from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.ingest.problems import problem_response

MAX_BODY_BYTES = 64 * 1024


class BodySizeLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(scope, receive, send)

        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, "payload-too-large", f"Request bodies are limited to {self.limit} bytes.",
                                    title="Content Too Large")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass
