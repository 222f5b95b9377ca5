"""Refuses request bodies over 64 KiB, declared or streamed, before the app sees any of it."""
from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.ingest.problems import problem_response

MAX_BODY_BYTES = 64 * 1024


class BodySizeLimit:
    """Reads the body first (at most the limit, so memory stays bounded), then hands it to the app.

    A chunked body declares no length; counting while the app reads it would fail inside the
    app's own body parsing, which answers a plain 400. Reading it here answers a proper 413.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(scope, receive, send)
        try:
            body = await read_body(receive, self.limit)
        except TooLarge:
            return await self._too_large(scope, receive, send)
        if body is None:
            return  # the client went away before sending its body
        await self.app(scope, replaying(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, "payload-too-large", f"Request bodies are limited to {self.limit} bytes.",
                                    title="Content Too Large")
        await response(scope, receive, send)


class TooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int | None = None) -> bytes | None:
    """The whole body; None if the client went away first. Raises TooLarge past `limit` bytes,
    having read no more than that."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` handing out the body already read first."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
