"""Coupons: the catalogue, spending points, a user's coupons, and merchants using codes."""
from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.ingest import idempotency, merchants, readmodels
from services.ingest import ports as adapters
from services.ingest.commands import coupons as commands
from services.ingest.commands.base import Reply
from services.ingest.deps import AppUser, FlagsDep, Pool, Ports, WritingUser, require_role
from services.ingest.flags import check_redemptions_allowed
from services.ingest.auth import Principal
from services.ingest.problems import COMMON_PROBLEMS, MEDIA_TYPE, Problem, problem_responses
from services.ingest.schemas import Text
from shared.coupon_codes import normalise
from shared.events import utcnow

router = APIRouter(tags=["coupons"], responses=COMMON_PROBLEMS)
Merchant = Annotated[Principal, Depends(require_role("merchant"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


class Template(BaseModel):
    template_id: UUID
    name: str
    partner: str
    points_cost: int
    valid_days: int
    is_active: bool


class RedeemRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template_id: UUID


class Redemption(BaseModel):
    redemption_id: UUID
    coupon_id: UUID
    code: str = Field(description="The single-use code: shown only in this response")
    points_cost: int
    available_points: int
    expires_at: AwareDatetime


class RedemptionStatus(BaseModel):
    redemption_id: UUID
    status: str = Field(description="pending, redeemed or failed")
    coupon_id: UUID | None = None
    code: str | None = None
    points_cost: int | None = None
    available_points: int | None = None
    expires_at: AwareDatetime | None = None
    reason: str | None = None


class Coupon(BaseModel):
    coupon_id: UUID
    template_id: UUID
    status: str
    points_cost: int
    issued_at: AwareDatetime
    expires_at: AwareDatetime | None


class UseCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Text = Field(min_length=1, max_length=64)


class UsedCoupon(BaseModel):
    coupon_id: UUID
    template_id: UUID
    status: str


# A coupon code is a bearer secret: no browser, proxy or CDN may keep a copy of an answer that holds one.
NO_STORE = {"Cache-Control": "no-store"}


def reply(result: Reply) -> JSONResponse:
    media = MEDIA_TYPE if result.status_code >= 400 else "application/json"
    headers = {**result.headers, **(NO_STORE if "code" in result.body else {})}
    return JSONResponse(result.body, status_code=result.status_code, headers=headers, media_type=media)


def require_key(key: str | None) -> str:
    if not key:
        raise Problem(400, "idempotency-key-required", "Send an Idempotency-Key header with this request.")
    return key


@router.get("/v1/coupon-templates", response_model=list[Template])
async def list_templates(_: AppUser, pool: Pool) -> list[Template]:
    """The coupons on offer."""
    return [Template(**dict(r)) for r in await readmodels.active_templates(pool)]


@router.post("/v1/redemptions", status_code=201, response_model=Redemption, responses={
    200: {"model": Redemption, "description": "Never sent; a retry repeats the first answer's status"},
    202: {"model": RedemptionStatus, "description": "Still being decided: poll the Location"},
    **problem_responses(404, 409, 503)})
async def redeem(body: RedeemRequest, user: WritingUser, ports: Ports, flags: FlagsDep,
                 key: IdempotencyKey = None) -> JSONResponse:
    """Spend points on a coupon; the code is in this response only."""
    check_redemptions_allowed(flags.current)
    return reply(await commands.redeem(ports, user_id=user.sub, template_id=body.template_id,
                                       key=require_key(key), now=utcnow()))


@router.get("/v1/redemptions/{redemption_id}", response_model=RedemptionStatus, responses=problem_responses(404))
async def get_redemption(redemption_id: UUID, user: AppUser, ports: Ports) -> RedemptionStatus | JSONResponse:
    """Where a redemption stands (for one answered 202)."""
    claim = await idempotency.answer_of(ports.pool, scope=f"redeem:{user.sub}", command_id=redemption_id)
    answer = await readmodels.command_answer(ports.pool, redemption_id, user.sub)
    if answer is None:
        if claim is None:
            raise Problem(404, "not-found", "No such redemption.")
        if isinstance(claim, idempotency.Answered) and claim.status_code == 201:
            # Answered 201 at once; the read model follows a moment later. The answer says the same.
            return _redeemed(redemption_id, claim.response, ports)
        if isinstance(claim, idempotency.Answered) and claim.status_code >= 400:
            # Refused before the redeemer saw it (an unknown or withdrawn template): never pending.
            return RedemptionStatus(redemption_id=redemption_id, status="failed",
                                    reason=claim.response["type"].rsplit("/", 1)[-1])
        return RedemptionStatus(redemption_id=redemption_id, status="pending")
    detail = answer["detail"]
    if answer["outcome"] != "redeemed":
        return RedemptionStatus(redemption_id=redemption_id, status="failed", reason=answer["outcome"],
                                available_points=detail.get("available_points"))
    return _redeemed(redemption_id, detail, ports)


def _redeemed(redemption_id: UUID, detail: dict, ports: adapters.Ports) -> JSONResponse:
    coupon_id = UUID(detail["coupon_id"])
    redeemed = RedemptionStatus(redemption_id=redemption_id, status="redeemed", coupon_id=coupon_id,
                                code=ports.keys.code_for(coupon_id), points_cost=detail["points_cost"],
                                available_points=detail["available_points"], expires_at=detail["expires_at"])
    return JSONResponse(redeemed.model_dump(mode="json"), headers=NO_STORE)


@router.get("/v1/me/coupons", response_model=list[Coupon])
async def my_coupons(user: AppUser, pool: Pool) -> list[Coupon]:
    """Your coupons, newest first; codes are never shown again."""
    rows = await readmodels.coupons_of(pool, user.sub)
    now = utcnow()
    return [Coupon(coupon_id=r["coupon_id"], template_id=r["template_id"], points_cost=r["issued_points_cost"],
                   status="expired" if r["status"] == "issued" and r["expires_at"] and r["expires_at"] <= now
                   else r["status"], issued_at=r["issued_at"], expires_at=r["expires_at"]) for r in rows]


@router.post("/v1/coupons/redeem", response_model=UsedCoupon, responses=problem_responses(404, 409, 429, 503))
async def use_code(body: UseCode, merchant: Merchant, ports: Ports) -> JSONResponse:
    """A merchant accepts a coupon code at the till, once."""
    now = utcnow()
    code = normalise(body.code)
    found = await merchants.find_coupon(ports.pool, merchant=merchant.sub,
                                        candidate_hashes=ports.keys.candidate_hashes(code) if code else [],
                                        limit=ports.settings.merchant_failed_attempts_per_hour, now=now)
    if isinstance(found, merchants.Limited):
        raise Problem(429, "too-many-failed-codes", "Too many unknown codes from this merchant; try again later.",
                      headers={"Retry-After": str(int(merchants.WINDOW.total_seconds()))})
    if found is None:
        raise Problem(404, "coupon-not-found", "No coupon has this code.")
    return reply(await commands.use_code(ports, merchant=merchant.sub, coupon_id=found["coupon_id"],
                                         owner=found["user_id"], now=now))
