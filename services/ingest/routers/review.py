"""The review side of administration: held events and their verdicts, users' ledgers, fraud insights."""
from __future__ import annotations

import logging
from typing import Literal
from uuid import UUID, uuid4

from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.ingest import cursors, readmodels
from services.ingest.deps import Admin, Pool, Publisher
from services.ingest.problems import COMMON_PROBLEMS, Problem, problem_responses
from services.ingest.publisher import publish_or_503
from services.ingest.schemas import Text
from shared import topics
from shared.commands import HoldEvent, ReviewEvent
from shared.events import utcnow

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=COMMON_PROBLEMS)
log = logging.getLogger("points.ingest")


class QueuedEvent(BaseModel):
    event_id: UUID
    user_id: str
    event_type: str
    event_time: AwareDatetime
    points_delta: int
    trust_score: int | None
    reasons: list[str]
    created_at: AwareDatetime


@router.get("/review-queue", response_model=list[QueuedEvent], responses=problem_responses(400))
async def review_queue(request: Request, _: Admin, pool: Pool, limit: int = Query(100, ge=1, le=1000),
                       user_id: Text | None = Query(None, max_length=255),
                       reason: Text | None = Query(None, max_length=200),
                       after: str | None = Query(None, max_length=200, description="From a Link: rel=next")) -> JSONResponse:
    """Events waiting for a person's verdict, oldest first; narrowed by user or reason; paged by Link: rel=next."""
    rows = await readmodels.review_queue(pool, limit=limit + 1, user_id=user_id, reason=reason,
                                         after=cursors.decode(after) if after else None)
    page = [QueuedEvent(event_id=r["id"], **{k: r[k] for k in r.keys() if k != "id"}).model_dump(mode="json")
            for r in rows[:limit]]
    headers = {}
    if len(rows) > limit:  # RFC 8288: the next page, with the same filters
        query = {k: v for k, v in {"limit": limit, "user_id": user_id, "reason": reason}.items() if v is not None}
        query["after"] = cursors.encode(rows[limit - 1]["created_at"], rows[limit - 1]["id"])
        headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return JSONResponse(page, headers=headers)


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    note: Text | None = Field(None, max_length=1000)


class VerdictAccepted(BaseModel):
    event_id: UUID
    decision: str
    validated_by: str


@router.post("/events/{event_id}/decision", response_model=VerdictAccepted, responses=problem_responses(404, 409, 503))
async def decide_event(event_id: UUID, body: Verdict, admin: Admin, pool: Pool, publisher: Publisher) -> VerdictAccepted:
    """Approve or reject a held event; the final ledger record names you."""
    row = await pool.fetchrow("SELECT user_id, validation_status FROM points_events WHERE id = $1", event_id)
    if row is None:
        raise Problem(404, "not-found", "No such event.")
    if row["validation_status"] != "pending_review":
        raise Problem(409, "not-in-review", f"The event is {row['validation_status']}, not awaiting review.")
    command = ReviewEvent(command_id=uuid4(), user_id=row["user_id"], issued_at=utcnow(), event_id=event_id,
                          admin=admin.sub, decision=body.decision, note=body.note)
    await publish_review(publisher, command)
    log.warning("points.review.decided", extra={"admin": admin.sub, "event_id": str(event_id),
                                                "decision": body.decision})
    return VerdictAccepted(event_id=event_id, decision=body.decision, validated_by=admin.sub)


class BulkVerdict(BaseModel):
    """One verdict for a selection of held events, or for every held event of one user."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    note: Text | None = Field(None, max_length=1000)
    event_ids: list[UUID] | None = Field(None, min_length=1, max_length=1000)
    user_id: Text | None = Field(None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _one_selection(self) -> "BulkVerdict":
        if (self.event_ids is None) == (self.user_id is None):
            raise ValueError("give either event_ids or user_id")
        return self


class VerdictOutcome(BaseModel):
    event_id: UUID
    # accepted: the verdict is on its way to the validator; not-in-review / not-found: nothing was sent.
    outcome: Literal["accepted", "not-in-review", "not-found"]
    validation_status: str | None = None


class BulkVerdictResult(BaseModel):
    decision: str
    validated_by: str
    outcomes: list[VerdictOutcome]


@router.post("/review-queue/verdicts", response_model=BulkVerdictResult, responses=problem_responses(503))
async def decide_many(body: BulkVerdict, admin: Admin, pool: Pool, publisher: Publisher) -> BulkVerdictResult:
    """Approve or reject many held events at once, each recorded like a single verdict naming you."""
    rows = await readmodels.held_events(pool, event_ids=body.event_ids, user_id=body.user_id)
    found = {r["id"]: r for r in rows}
    now, outcomes = utcnow(), []
    for event_id in body.event_ids if body.event_ids is not None else list(found):
        row = found.get(event_id)
        if row is None:
            outcomes.append(VerdictOutcome(event_id=event_id, outcome="not-found"))
        elif row["validation_status"] != "pending_review":
            outcomes.append(VerdictOutcome(event_id=event_id, outcome="not-in-review",
                                           validation_status=row["validation_status"]))
        else:
            # The validator finishes a held event once, so a repeated bulk verdict changes nothing.
            await publish_review(publisher, ReviewEvent(
                command_id=uuid4(), user_id=row["user_id"], issued_at=now, event_id=event_id, admin=admin.sub,
                decision=body.decision, note=body.note))
            outcomes.append(VerdictOutcome(event_id=event_id, outcome="accepted", validation_status="pending_review"))
    log.warning("points.review.bulk_decided", extra={
        "admin": admin.sub, "decision": body.decision, "user_id": body.user_id,
        "accepted": sum(o.outcome == "accepted" for o in outcomes), "asked": len(outcomes)})
    return BulkVerdictResult(decision=body.decision, validated_by=admin.sub, outcomes=outcomes)


class Held(BaseModel):
    held: int


@router.post("/hold-pending", response_model=Held, responses=problem_responses(503))
async def hold_pending(admin: Admin, pool: Pool, publisher: Publisher) -> Held:
    """Send every still-undecided event to the review queue (the guide's partial rollback)."""
    return Held(held=await hold_every_pending(pool, publisher, admin=admin.sub, now=utcnow()))


async def hold_every_pending(pool, publisher, *, admin: str, now) -> int:
    """A hold command for every event still pending; the validator holds those it has not decided yet."""
    rows = await pool.fetch("SELECT id, user_id, event_type, event_time, points_delta, proof_type FROM points_events "
                            "WHERE validation_status = 'pending'")
    for r in rows:
        await publish_review(publisher, HoldEvent(
            command_id=uuid4(), user_id=r["user_id"], issued_at=now, event_id=r["id"], admin=admin,
            event_type=r["event_type"], event_time=r["event_time"], points=r["points_delta"],
            proof_type=r["proof_type"]))
    log.warning("points.review.hold_pending", extra={"admin": admin, "held": len(rows)})
    return len(rows)


async def publish_review(publisher, command) -> None:
    await publish_or_503(publisher, topics.REVIEWS, command, key=command.user_id, what="command")


class AdminHistoryItem(BaseModel):
    event_id: UUID
    event_type: str
    event_time: AwareDatetime
    points_delta: int
    validation_status: str
    trust_score: int | None
    reasons: list[str]
    validated_by: str | None
    review_note: str | None


@router.get("/users/{user_id}/history", response_model=list[AdminHistoryItem])
async def user_history(user_id: str, _: Admin, pool: Pool,
                       limit: int = Query(200, ge=1, le=1000)) -> list[AdminHistoryItem]:
    """Everything in a user's ledger, newest first, with who decided it."""
    rows = await pool.fetch(
        "SELECT id, event_type, event_time, points_delta, validation_status, trust_score, reasons, validated_by, "
        "review_note FROM points_events WHERE user_id = $1 ORDER BY event_time DESC, id DESC LIMIT $2",
        user_id, limit)
    return [AdminHistoryItem(event_id=r["id"], **{k: r[k] for k in r.keys() if k != "id"}) for r in rows]


class Insight(BaseModel):
    id: UUID
    user_id: str
    event_id: UUID | None
    insight_type: str
    severity: str
    score: int
    evidence: dict
    created_at: AwareDatetime


@router.get("/fraud-insights", response_model=list[Insight])
async def fraud_insights(_: Admin, pool: Pool, severity: Literal["low", "medium", "high", "critical"] | None = None,
                         limit: int = Query(200, ge=1, le=1000)) -> list[Insight]:
    """Recent fraud insights, newest first, optionally of one severity."""
    rows = await pool.fetch(
        "SELECT id, user_id, event_id, insight_type, severity, score, evidence, created_at FROM fraud_insights "
        "WHERE ($1::text IS NULL OR severity = $1) ORDER BY created_at DESC LIMIT $2", severity, limit)
    return [Insight(**dict(r)) for r in rows]
