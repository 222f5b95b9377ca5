"""App events: submit one, read one back."""
from __future__ import annotations

import logging
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from services.ingest.deps import AppUser, Pool, Publisher
from services.ingest.problems import Problem
from services.ingest.readmodels import event_by_id
from services.ingest.schemas import EventAccepted, EventView, SubmitEvent
from services.ingest.submission import Rejected, accept
from shared import topics
from shared.events import utcnow

router = APIRouter(prefix="/v1/events", tags=["events"])
log = logging.getLogger("points.ingest")

SUBMITTED = Counter("ingest_events_submitted_total", "Events accepted and stored in Kafka", ["event_type"])
REFUSED = Counter("ingest_events_refused_total", "Events refused at the gateway", ["reason"])


@router.post("", status_code=202, response_model=EventAccepted,
             responses={422: {"description": "Invalid, unknown or stale event"}})
async def submit_event(body: SubmitEvent, user: AppUser, publisher: Publisher) -> JSONResponse:
    """Record what a user did; answered once Kafka has it."""
    try:
        event = accept(
            user_id=user.sub, event_type=body.event_type, event_time=body.event_time, nonce=body.nonce,
            payload=body.payload, device_id=body.device_id,
            proof_type=body.attestation.type if body.attestation else "none", now=utcnow(),
        )
    except Rejected as exc:
        REFUSED.labels(exc.slug).inc()
        raise Problem(422, exc.slug, exc.detail, title="Unprocessable Content", errors=exc.errors) from exc
    try:
        await publisher.publish(topics.SUBMITTED, event, key=user.sub)
    except Exception as exc:  # any broker failure means: not stored, so not acknowledged
        REFUSED.labels("kafka-unavailable").inc()
        log.error("points.error", extra={"operation": "publish", "error_message": str(exc)})
        raise Problem(503, "kafka-unavailable", "The event could not be stored; retry with the same nonce.",
                      headers={"Retry-After": "1"}) from exc
    SUBMITTED.labels(event.event_type).inc()
    log.info("points.event.submitted", extra={
        "user_id": user.sub, "event_type": event.event_type, "event_id": str(event.event_id)})
    return JSONResponse(EventAccepted(event_id=event.event_id).model_dump(mode="json"), status_code=202)


@router.get("/{event_id}", response_model=EventView, responses={404: {"description": "No such event of yours"}})
async def get_event(event_id: UUID, user: AppUser, pool: Pool) -> EventView:
    """One of your events with its decision."""
    row = await event_by_id(pool, user.sub, event_id)
    if row is None:
        raise Problem(404, "not-found", "No such event.")
    return EventView(event_id=row["id"], event_type=row["event_type"], event_time=row["event_time"],
                     validation_status=row["validation_status"], points_delta=row["points_delta"],
                     trust_score=row["trust_score"], reasons=list(row["reasons"]))
