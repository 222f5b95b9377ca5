"""The review side of administration: held events and their verdicts, users' ledgers, fraud insights."""
from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal
from uuid import UUID

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.ingest import cursors, readmodels
from services.ingest.commands import review
from services.ingest.deps import Admin, Pool, Ports
from services.ingest.problems import COMMON_PROBLEMS, problem_responses
from services.ingest.schemas import Text
from shared.events import utcnow

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=COMMON_PROBLEMS)


class QueuedEvent(BaseModel):
    event_id: UUID
    user_id: str
    event_type: str
    event_time: AwareDatetime
    points_delta: int
    trust_score: int | None
    reasons: list[str]
    created_at: AwareDatetime


def held_filter(user_id: Text | None = Query(None, max_length=255),
                reason: Text | None = Query(None, max_length=200),
                event_type: Text | None = Query(None, max_length=100),
                held_minutes: int | None = Query(None, ge=0, le=525_600,
                                                 description="Only events held at least this long")) -> dict:
    """The queue's filters as the request gave them (kept in the next page's link)."""
    return {"user_id": user_id, "reason": reason, "event_type": event_type, "held_minutes": held_minutes}


def _held(given: dict) -> readmodels.HeldFilter:
    minutes = given["held_minutes"]
    return readmodels.HeldFilter(user_id=given["user_id"], reason=given["reason"], event_type=given["event_type"],
                                 before=None if minutes is None else utcnow() - timedelta(minutes=minutes))


Filters = Annotated[dict, Depends(held_filter)]


@router.get("/review-queue", response_model=list[QueuedEvent], responses=problem_responses(400))
async def review_queue(request: Request, _: Admin, pool: Pool, given: Filters, limit: int = Query(100, ge=1, le=1000),
                       after: str | None = Query(None, max_length=200, description="From a Link: rel=next")) -> JSONResponse:
    """Events waiting for a person's verdict, oldest first; narrowed by user, reason, event type or how
    long they have waited; paged by Link: rel=next."""
    rows = await readmodels.review_queue(pool, limit=limit + 1, held=_held(given),
                                         after=cursors.decode(after) if after else None)
    page = [QueuedEvent(event_id=r["id"], **{k: r[k] for k in r.keys() if k != "id"}).model_dump(mode="json")
            for r in rows[:limit]]
    headers = {}
    if len(rows) > limit:  # RFC 8288: the next page, with the same filters
        query = {k: v for k, v in {"limit": limit, **given}.items() if v is not None}
        query["after"] = cursors.encode(rows[limit - 1]["created_at"], rows[limit - 1]["id"])
        headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return JSONResponse(page, headers=headers)


class HeldByUser(BaseModel):
    user_id: str
    held: int
    oldest: AwareDatetime
    points: int
    reasons: list[str]


@router.get("/review-queue/users", response_model=list[HeldByUser])
async def review_queue_by_user(_: Admin, pool: Pool, given: Filters,
                               limit: int = Query(100, ge=1, le=1000)) -> list[HeldByUser]:
    """The queue grouped by user, most held first: a farm of accounts or one user's burst is one line,
    to settle with one bulk verdict."""
    rows = await readmodels.review_queue_by_user(pool, limit=limit, held=_held(given))
    return [HeldByUser(**dict(r)) for r in rows]


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    note: Text | None = Field(None, max_length=1000)


class VerdictAccepted(BaseModel):
    event_id: UUID
    decision: str
    validated_by: str


@router.post("/events/{event_id}/decision", response_model=VerdictAccepted, responses=problem_responses(404, 409, 503))
async def decide_event(event_id: UUID, body: Verdict, admin: Admin, ports: Ports) -> VerdictAccepted:
    """Approve or reject a held event; the final ledger record names you."""
    await review.decide(ports, admin=admin.sub, event_id=event_id, decision=body.decision, note=body.note,
                        now=utcnow())
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
async def decide_many(body: BulkVerdict, admin: Admin, ports: Ports) -> BulkVerdictResult:
    """Approve or reject many held events at once, each recorded like a single verdict naming you."""
    outcomes = await review.decide_many(ports, admin=admin.sub, decision=body.decision, note=body.note,
                                        event_ids=body.event_ids, user_id=body.user_id, now=utcnow())
    return BulkVerdictResult(decision=body.decision, validated_by=admin.sub,
                             outcomes=[VerdictOutcome(**vars(o)) for o in outcomes])


class Held(BaseModel):
    held: int


@router.post("/hold-pending", response_model=Held, responses=problem_responses(503))
async def hold_pending(admin: Admin, ports: Ports,
                       user_id: list[Text] | None = Query(None, max_length=255,
                                                          description="Only these users' events (repeatable)")) -> Held:
    """Send every still-undecided event (of the named users, when given) to the review queue: the
    guide's partial rollback."""
    return Held(held=await review.hold_pending(ports, admin=admin.sub, user_ids=user_id, now=utcnow()))


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
    rows = await readmodels.admin_history(pool, user_id, limit)
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
    return [Insight(**dict(r)) for r in await readmodels.fraud_insights(pool, severity, limit)]
