"""Admin operations on money and rollout: flags, awards, revocations, coupon templates."""
from __future__ import annotations

import logging
from uuid import UUID

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from services.ingest import flags as flag_store
from services.ingest import templates
from services.ingest.commands import coupons, points
from services.ingest.deps import Admin, FlagsDep, Pool, Ports
from services.ingest.problems import COMMON_PROBLEMS, Problem, problem_responses
from services.ingest.routers.coupons import IdempotencyKey, Template, reply, require_key
from services.ingest.schemas import Text
from shared.events import utcnow

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=COMMON_PROBLEMS)
log = logging.getLogger("points.ingest")


class FlagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points_system_enabled: StrictBool
    rollout_percent: StrictInt = Field(ge=0, le=100)
    # Beyond API.md: new redemptions on or off (unset keeps it), which an alert may have switched off.
    redemptions_enabled: StrictBool | None = None


class FlagsOut(FlagsIn):
    redemptions_enabled: bool
    updated_by: str = Field(description="The admin, or alert:<name>:<fingerprint> for an alert's action")
    updated_at: AwareDatetime | None


@router.get("/flags", response_model=FlagsOut)
async def get_flags(_: Admin, pool: Pool) -> FlagsOut:
    """The kill switch and the rollout percentage, as stored."""
    return FlagsOut(**vars(await flag_store.load(pool)))


@router.put("/flags", response_model=FlagsOut)
async def put_flags(body: FlagsIn, admin: Admin, pool: Pool, cache: FlagsDep) -> FlagsOut:
    """Change the kill switch or the rollout; every gateway follows within seconds."""
    saved = await flag_store.save(pool, enabled=body.points_system_enabled, rollout_percent=body.rollout_percent,
                                  redemptions_enabled=body.redemptions_enabled, admin=admin.sub)
    cache.current = saved
    log.warning("points.flags.changed", extra={"admin": admin.sub, **body.model_dump()})
    return FlagsOut(**vars(saved))


class AwardRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Text = Field(min_length=1, max_length=255)
    points: StrictInt = Field(gt=0, le=1_000_000)
    reason: Text = Field(min_length=1, max_length=500)


class Award(BaseModel):
    event_id: UUID
    user_id: str
    points: int
    reason: str
    validated_by: str


@router.post("/awards", status_code=201, response_model=Award, responses=problem_responses(503))
async def award_points(body: AwardRequest, admin: Admin, ports: Ports, key: IdempotencyKey = None) -> JSONResponse:
    """Credit a user; the ledger record names you."""
    return reply(await points.award(ports, admin=admin.sub, user_id=body.user_id, points=body.points,
                                    reason=body.reason, key=require_key(key), now=utcnow()))


class ClawbackRequest(BaseModel):
    """An amount, or the validated events whose credit to take back; either, not both."""

    model_config = ConfigDict(extra="forbid")

    points: StrictInt | None = Field(None, gt=0, le=1_000_000)
    event_ids: list[UUID] | None = Field(None, min_length=1, max_length=1000)
    reason: Text = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _one_measure(self) -> "ClawbackRequest":
        if (self.points is None) == (self.event_ids is None):
            raise ValueError("give either points or event_ids")
        return self


class Clawback(BaseModel):
    event_id: UUID
    user_id: str
    requested_points: int
    recovered_points: int = Field(description="Taken from the balance, which never goes below zero")
    unrecovered_points: int = Field(description="What the balance could not cover: recorded, owed")
    reversed_event_ids: list[UUID]
    available_points: int
    validated_by: str
    reason: str


@router.post("/users/{user_id}/clawback", status_code=201, response_model=Clawback,
             responses=problem_responses(409, 503))
async def claw_back(user_id: Annotated[str, Path(min_length=1, max_length=255)], body: ClawbackRequest, admin: Admin,
                    ports: Ports, key: IdempotencyKey = None) -> JSONResponse:
    """Take points back (an amount, or chosen events' credit) as a clawback record naming you."""
    return reply(await points.claw_back(ports, admin=admin.sub, user_id=user_id, points=body.points,
                                        event_ids=body.event_ids, reason=body.reason, key=require_key(key),
                                        now=utcnow()))


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refund: StrictBool = False


class Revoked(BaseModel):
    coupon_id: UUID
    status: str
    refunded_points: int


@router.post("/coupons/{coupon_id}/revoke", response_model=Revoked, responses=problem_responses(404, 409, 503))
async def revoke_coupon(coupon_id: UUID, body: RevokeRequest, admin: Admin, ports: Ports) -> JSONResponse:
    """Make a coupon unusable, refunding its points if asked."""
    return reply(await coupons.revoke(ports, admin=admin.sub, coupon_id=coupon_id, refund=body.refund,
                                      now=utcnow()))


class NewTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    partner: Text = Field(min_length=1, max_length=200)
    points_cost: StrictInt = Field(gt=0, le=10_000_000)
    valid_days: StrictInt = Field(30, gt=0, le=3650)


class TemplateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_active: StrictBool | None = None
    name: Text | None = Field(None, min_length=1, max_length=200)
    partner: Text | None = Field(None, min_length=1, max_length=200)
    points_cost: StrictInt | None = Field(None, gt=0, le=10_000_000)
    valid_days: StrictInt | None = Field(None, gt=0, le=3650)


@router.post("/coupon-templates", status_code=201, response_model=Template)
async def create_template(body: NewTemplate, admin: Admin, pool: Pool) -> JSONResponse:
    """Offer a new coupon."""
    row = await templates.create(pool, admin=admin.sub, name=body.name, partner=body.partner,
                                 points_cost=body.points_cost, valid_days=body.valid_days)
    return JSONResponse(Template(**dict(row)).model_dump(mode="json"), status_code=201)


@router.put("/coupon-templates/{template_id}", response_model=Template, responses=problem_responses(404))
async def update_template(template_id: UUID, body: TemplateChange, admin: Admin, pool: Pool) -> Template:
    """Change, activate or deactivate a coupon template; coupons already issued keep their terms."""
    row = await templates.change(pool, template_id, body.model_dump(exclude_none=True), admin=admin.sub)
    if row is None:
        raise Problem(404, "template-not-found", "No such coupon template.")
    return Template(**dict(row))
