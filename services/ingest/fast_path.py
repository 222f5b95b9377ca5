"""`POST /v1/events` past FastAPI's per-request machinery: the one route called at event rates.

A submission's profile had the framework's layers around the route (matching it among every route,
the exception and exit-stack middlewares, resolving its dependencies, reading its body field) at a
third of the gateway's CPU. This layer answers a submission that is well formed and allowed by
calling the route's own code (`answer_submission`) with the same checks the route's dependencies
make. Anything else (no token or a bad one, another role, the kill switch or the canary saying no,
another media type, a body that is not JSON or that the schema refuses) goes on to FastAPI as it
came, which answers it exactly as it always has. So no answer changes, only what a good one costs.
"""
from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.ingest.auth import Principal
from services.ingest.deps import writing_user
from services.ingest.limits import read_body, replaying
from services.ingest.routers.events import answer_submission, router as events_router
from services.ingest.schemas import SubmitEvent

PATH = events_router.prefix
# What the request metrics label the request with, as when FastAPI routes it.
ROUTE = next(route for route in events_router.routes
             if isinstance(route, APIRoute) and route.path == PATH and "POST" in route.methods)
JSON = b"application/json"


class SubmitEventFastPath:
    """Innermost of the gateway's middlewares: inside the request metrics and the body-size limit,
    which see a fast submission as they see any other request."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH or scope.get("root_path"):
            return await self.app(scope, receive, send)
        body = await read_body(receive)
        if body is None:
            return  # the client went away before sending its body
        replay = replaying(body, receive)
        app: FastAPI = scope["app"]
        taken = _take(app, scope, body)
        if taken is None:
            return await self.app(scope, replay, send)
        submission, user = taken
        scope["route"] = ROUTE
        try:
            response = await answer_submission(submission, user, app.state.ports, scope.get("client"))
        except Exception as exc:
            handler = _handler_for(app, exc)
            if handler is None:
                raise
            response = await handler(Request(scope, replay), exc)
        await response(scope, replay, send)


def _take(app: FastAPI, scope: Scope, body: bytes) -> tuple[SubmitEvent, Principal] | None:
    """The submission and who sent it, when FastAPI would hand both to the route; otherwise None."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)  # the first of a repeated header, as Starlette reads it
    media_type = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    token = token.strip()
    if media_type != JSON or scheme.lower() != "bearer" or not token:
        return None
    try:
        user = writing_user(app.state, token)
        # json.loads, as Starlette reads a body: orjson would read an integer past 64 bits as a float,
        # and the event (and its body hash, which tells a retry from a reused nonce) would differ.
        submission = SubmitEvent.model_validate(json.loads(body))
    except Exception:  # a refusal, or anything unforeseen: FastAPI's path answers it
        return None
    return submission, user


def _handler_for(app: FastAPI, exc: Exception):
    """The app's own handler for this error, found the way Starlette's exception middleware finds it;
    None for an unexpected one, which goes on up to the server-error middleware (it answers 500 and
    raises again, so the server logs it), as it does from FastAPI's routes."""
    for cls in type(exc).__mro__:
        if cls in app.exception_handlers:
            return app.exception_handlers[cls] if cls is not Exception else None
    return None

