"""Commands for the redeemer: imperative, each handled once by the owner of the user's partition."""
from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from shared.events import Event


class Command(Event):
    command_id: UUID
    user_id: str
    issued_at: AwareDatetime


class RedeemCoupon(Command):
    """Spend points on a coupon from a template, if the balance covers it."""

    ce_type: ClassVar[str] = "dev.points.command.redeem_coupon.v1"

    template_id: UUID
    points_cost: int = Field(gt=0)
    valid_days: int = Field(gt=0)


class UseCoupon(Command):
    """A merchant presents a coupon (found by its code's hash) at the till."""

    ce_type: ClassVar[str] = "dev.points.command.use_coupon.v1"

    coupon_id: UUID
    merchant: str


class RevokeCoupon(Command):
    """An admin makes a coupon unusable, optionally refunding its points."""

    ce_type: ClassVar[str] = "dev.points.command.revoke_coupon.v1"

    coupon_id: UUID
    admin: str
    refund: bool


class ClawBack(Command):
    """An admin takes points back: an amount, or what chosen validated events credited. The balance never
    goes below zero; what it cannot cover is recorded as unrecovered."""

    ce_type: ClassVar[str] = "dev.points.command.claw_back.v1"

    admin: str
    reason: str
    points: int | None = Field(None, gt=0)
    event_ids: tuple[UUID, ...] | None = None


class ReviewEvent(Command):
    """An admin's verdict on an event the validator held for review."""

    ce_type: ClassVar[str] = "dev.points.command.review_event.v1"

    event_id: UUID
    admin: str
    decision: Literal["approve", "reject"]
    note: str | None = None


class HoldEvent(Command):
    """Stop an undecided event from being decided automatically: it goes to the review queue."""

    ce_type: ClassVar[str] = "dev.points.command.hold_event.v1"

    event_id: UUID
    admin: str
    event_type: str
    event_time: AwareDatetime
    points: int
    proof_type: str


COMMAND_TYPES: dict[str, type[Command]] = {
    cls.ce_type: cls for cls in (RedeemCoupon, UseCoupon, RevokeCoupon, ClawBack, ReviewEvent, HoldEvent)
}
