"""App events: submit one, read one back."""
from __future__ import annotations

import hashlib
import hmac
import logging
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from services.ingest import ports as adapters
from services.ingest.commands import events as commands
from services.ingest.attestation.assess import assess
from services.ingest.auth import Principal
from services.ingest.deps import AppUser, Pool, Ports, WritingUser
from services.ingest.problems import COMMON_PROBLEMS, Problem, problem_responses
from services.ingest.readmodels import event_by_id
from services.ingest.schemas import EventAccepted, EventView, SubmitEvent
from services.ingest.submission import Rejected, accept
from shared.events import utcnow

router = APIRouter(prefix="/v1/events", tags=["events"], responses=COMMON_PROBLEMS)
log = logging.getLogger("points.ingest")

SUBMITTED = Counter("ingest_events_submitted_total", "Events accepted and stored in Kafka", ["event_type"])
REFUSED = Counter("ingest_events_refused_total", "Events refused at the gateway", ["reason"])
DUPLICATES = Counter("ingest_events_duplicate_total", "Retries answered with the first event")
REFUSED.labels("kafka-unavailable")  # present from the start, so an alert's rate() sees the first outage too


def client_ip_hash(client: tuple[str, int] | None, settings) -> str | None:
    """A keyed hash of the caller's address (never the address), when the deployment records it."""
    if not settings.record_client_ip or client is None:
        return None
    key = settings.client_ip_key.get_secret_value().encode()
    return hmac.new(key, client[0].encode(), hashlib.sha256).hexdigest()[:32]


@router.post("", status_code=202, response_model=EventAccepted, responses={
    200: {"model": EventAccepted, "description": "A retry of an accepted event: the first event id"},
    **problem_responses(413, 429, 503)})
async def submit_event(body: SubmitEvent, user: WritingUser, ports: Ports, request: Request) -> JSONResponse:
    """Record what a user did; answered once Kafka has it."""
    return await answer_submission(body, user, ports, request.scope.get("client"))


async def answer_submission(body: SubmitEvent, user: Principal, ports: adapters.Ports,
                            client: tuple[str, int] | None) -> JSONResponse:
    """The route's work once FastAPI (or the fast path, services/ingest/fast_path.py) has checked
    who is asking and read the body."""
    now = utcnow()
    try:
        event = accept(
            user_id=user.sub, event_type=body.event_type, event_time=body.event_time, nonce=body.nonce,
            payload=body.payload, device_id=body.device_id,
            proof_type=body.attestation.type if body.attestation else "none", now=now,
        )
    except Rejected as exc:
        REFUSED.labels(exc.slug).inc()
        raise Problem(422, exc.slug, exc.detail, title="Unprocessable Content", errors=exc.errors) from exc
    settings = ports.settings
    verdict = await assess(body.attestation, user_id=user.sub, nonce=body.nonce, pool=ports.pool,
                           settings=settings, now=now)
    event = event.model_copy(update={"attestation": verdict.verdict, "attestation_reasons": verdict.reasons,
                                     "client_ip_hash": client_ip_hash(client, settings)})
    try:
        accepted = await commands.submit_event(ports, event, now=now)
    except Problem as problem:
        REFUSED.labels(problem.slug).inc()
        raise
    body_out = EventAccepted(event_id=accepted.event.event_id, duplicate=accepted.duplicate)
    if accepted.duplicate:
        DUPLICATES.inc()
        return JSONResponse(body_out.model_dump(mode="json"), status_code=200, headers=accepted.headers)
    SUBMITTED.labels(event.event_type).inc()
    log.info("points.event.submitted", extra={
        "user_id": user.sub, "event_type": event.event_type, "event_id": str(event.event_id)})
    return JSONResponse(body_out.model_dump(mode="json"), status_code=202, headers=accepted.headers)


@router.get("/{event_id}", response_model=EventView, responses=problem_responses(404))
async def get_event(event_id: UUID, user: AppUser, pool: Pool) -> EventView:
    """One of your events with its decision."""
    row = await event_by_id(pool, user.sub, event_id)
    if row is None:
        raise Problem(404, "not-found", "No such event.")
    return EventView(event_id=row["id"], event_type=row["event_type"], event_time=row["event_time"],
                     validation_status=row["validation_status"], points_delta=row["points_delta"],
                     trust_score=row["trust_score"], reasons=list(row["reasons"]))
