"""RFC 9457 problem documents for every error the gateway returns."""
from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

TYPE_BASE = "https://points.dev/problems/"
MEDIA_TYPE = "application/problem+json"
PROBLEMS = Counter("ingest_problems_total", "Problem documents answered, by type", ["type", "status"])
# Present from the start, so an alert's rate() sees the first outage too.
for _slug in ("database-unavailable", "kafka-unavailable"):
    PROBLEMS.labels(_slug, "503")


class ProblemDocument(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=[TYPE_BASE + "validation-error"])
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: list[dict[str, Any]] | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents a route can answer with."""
    return {status: {"model": ProblemDocument, "description": HTTPStatus(status).phrase} for status in statuses}


# Every authenticated route can answer these.
COMMON_PROBLEMS = problem_responses(400, 401, 403, 413, 422, 500)


class Problem(Exception):
    def __init__(self, status: int, slug: str, detail: str, *, title: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any):
        self.status, self.slug, self.detail = status, slug, detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extra = extra

    def document(self) -> dict[str, Any]:
        return {"type": TYPE_BASE + self.slug, "title": self.title, "status": self.status, "detail": self.detail,
                **self.extra}


def problem_response(status: int, slug: str, detail: str, *, title: str | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    PROBLEMS.labels(slug, str(status)).inc()
    body = {"type": TYPE_BASE + slug, "title": title or HTTPStatus(status).phrase, "status": status,
            "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


_SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
          405: "method-not-allowed", 413: "payload-too-large", 415: "unsupported-media-type"}


def _problems_as_problem_json(app: FastAPI) -> None:
    """FastAPI documents every response as application/json; ours are application/problem+json."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if status[:1] in "45" and "application/json" in content:
                        content[MEDIA_TYPE] = content.pop("application/json")
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


def install(app: FastAPI) -> None:
    _problems_as_problem_json(app)

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        PROBLEMS.labels(exc.slug, str(exc.status)).inc()
        return JSONResponse(exc.document(), status_code=exc.status, media_type=MEDIA_TYPE, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"pointer": "/" + "/".join(str(p) for p in err["loc"][1:]) if len(err["loc"]) > 1 else "/",
             "location": str(err["loc"][0]) if err["loc"] else "body",
             "detail": err["msg"]}
            for err in exc.errors()
        ]
        return problem_response(422, "validation-error", "The request does not match the schema.",
                                title="Unprocessable Content", errors=errors)

    @app.exception_handler(asyncpg.DataError)
    async def _unstorable(_: Request, exc: asyncpg.DataError) -> JSONResponse:
        # Inputs are checked before anything is published; this catches what a schema cannot
        # (a path segment PostgreSQL cannot represent, say), so it still answers as a client error.
        return problem_response(422, "invalid-value", "A value in the request cannot be processed.",
                                title="Unprocessable Content", errors=[{"pointer": "/", "detail": type(exc).__name__}])

    @app.exception_handler(asyncpg.PostgresConnectionError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(ConnectionError)
    @app.exception_handler(OSError)
    async def _database_down(_: Request, exc: Exception) -> JSONResponse:
        logging.getLogger("points.ingest").error("points.error", extra={
            "operation": "database", "error_message": f"{type(exc).__name__}: {exc}"})
        return problem_response(503, "database-unavailable", "The database is not reachable; nothing was recorded, "
                                "retry with the same nonce or Idempotency-Key.", headers={"Retry-After": "2"})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logging.getLogger("points.ingest").error("points.error", exc_info=exc,
                                                 extra={"operation": "request", "error_message": str(exc)})
        return problem_response(500, "internal-error", "Something went wrong on our side.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = _SLUGS.get(exc.status_code, "error")
        return problem_response(exc.status_code, slug, str(exc.detail), headers=getattr(exc, "headers", None))
