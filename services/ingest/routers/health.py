"""Liveness, readiness and Prometheus metrics."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.ingest import readmodels
from shared.signing import keyring_from

router = APIRouter(tags=["operations"])


@router.get("/healthz", responses={200: {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"status": {"type": "string"}}}}}}})
async def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool]


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """A Kafka broker and PostgreSQL answering, so a load balancer sends no one here while either is away."""
    state = request.app.state
    checks = {"kafka": await state.publisher.reachable(), "replies": state.replies.started}
    try:
        checks["postgres"] = await readmodels.answers(state.pool)
    except Exception:
        checks["postgres"] = False
    ok = all(checks.values())
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


@router.get("/.well-known/points-signing-keys", responses={200: {"content": {"application/json": {"schema": {
    "type": "object", "required": ["keys"], "properties": {"keys": {"type": "array", "items": {"type": "object"}}}}}}}})
async def signing_keys(request: Request) -> JSONResponse:
    """The Ed25519 public keys (JWK set) that verify the records this system publishes."""
    return JSONResponse(keyring_from(request.app.state.settings).jwks(),
                        headers={"Cache-Control": "public, max-age=300"})


# Included only where the deployment exposes operations on the public port (see Settings.exposes_ops_publicly).
metrics_router = APIRouter(tags=["operations"])


@metrics_router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
