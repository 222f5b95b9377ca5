"""The review side of administration: held events and their verdicts, users' ledgers, fraud insights."""
from __future__ import annotations

import logging
from typing import Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

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


@router.get("/review-queue", response_model=list[QueuedEvent])
async def review_queue(_: Admin, pool: Pool, limit: int = Query(100, ge=1, le=1000),
                       user_id: Text | None = Query(None, max_length=256)) -> list[QueuedEvent]:
    """Events waiting for a person's verdict, oldest first; `user_id` narrows it to one user's."""
    rows = await pool.fetch(
        "SELECT id, user_id, event_type, event_time, points_delta, trust_score, reasons, created_at "
        "FROM points_events WHERE validation_status = 'pending_review' AND ($2::text IS NULL OR user_id = $2) "
        "ORDER BY created_at, id LIMIT $1", limit, user_id)
    return [QueuedEvent(event_id=r["id"], **{k: r[k] for k in r.keys() if k != "id"}) for r in rows]


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
