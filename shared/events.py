"""Facts recorded on the log. Frozen, past tense, each with an id, a version and an aware timestamp."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ValidationStatus = Literal["pending", "validated", "rejected", "pending_review"]
AttestationVerdict = Literal["valid", "invalid", "absent", "unverifiable"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # CloudEvents `type`; a new schema version gets a new type name.
    ce_type: ClassVar[str]
    version: int = 1


class EventSubmitted(Event):
    """An app told us a user did something; nothing is decided yet."""

    ce_type: ClassVar[str] = "dev.points.event.submitted.v1"

    event_id: UUID
    user_id: str
    event_type: str
    event_time: AwareDatetime
    nonce: str
    payload: dict[str, Any] = Field(default_factory=dict)
    device_id: str | None = None
    proof_type: str = "none"
    # The gateway's reading of the device attestation: a trust signal for the validator.
    attestation: AttestationVerdict = "absent"
    attestation_reasons: tuple[str, ...] = ()
    # A keyed hash of the client's address, when the gateway records it: for many-accounts-per-IP.
    client_ip_hash: str | None = None
    points: int
    received_at: AwareDatetime
    # What makes a retry "the same request": see services/ingest/submission.body_hash.
    body_hash: str


class EventDecided(Event):
    """The validator (or an admin) decided what an event is worth. Ledger record."""

    ce_type: ClassVar[str] = "dev.points.event.decided.v1"

    event_id: UUID
    user_id: str
    event_type: str
    event_time: AwareDatetime
    points_delta: int
    proof_type: str
    validation_status: ValidationStatus
    trust_score: int = Field(ge=0, le=100)
    reasons: tuple[str, ...] = ()
    rule_set: str
    validated_by: str
    decided_at: AwareDatetime
    related_entity_type: str | None = None
    related_entity_id: str | None = None
    review_note: str | None = None


Severity = Literal["low", "medium", "high", "critical"]


class FraudInsightRaised(Event):
    """Something about a user's behaviour looks like abuse; the evidence says what."""

    ce_type: ClassVar[str] = "dev.points.fraud.insight_raised.v1"

    insight_id: UUID
    user_id: str
    event_id: UUID | None = None
    insight_type: str
    severity: Severity
    score: int = Field(ge=0, le=100)
    evidence: dict[str, Any] = Field(default_factory=dict)
    raised_at: AwareDatetime


CouponStatus = Literal["issued", "redeemed", "revoked", "expired"]


class CouponIssued(Event):
    """Points were spent on a coupon; only the code's keyed hash is ever recorded."""

    ce_type: ClassVar[str] = "dev.points.coupon.issued.v1"

    coupon_id: UUID
    redemption_id: UUID
    user_id: str
    template_id: UUID
    code_hash: str
    code_key_id: str
    points_cost: int = Field(gt=0)
    issued_at: AwareDatetime
    expires_at: AwareDatetime


class CouponUsed(Event):
    """A merchant accepted the coupon at the till; it cannot be used again."""

    ce_type: ClassVar[str] = "dev.points.coupon.used.v1"

    coupon_id: UUID
    user_id: str
    merchant: str
    used_at: AwareDatetime


class CouponRevoked(Event):
    """An admin made the coupon unusable, refunding its points or not."""

    ce_type: ClassVar[str] = "dev.points.coupon.revoked.v1"

    coupon_id: UUID
    user_id: str
    admin: str
    refunded_points: int = Field(ge=0)
    revoked_at: AwareDatetime


class CommandAnswered(Event):
    """The redeemer's answer to one command, for the gateway waiting on it and for later polling."""

    ce_type: ClassVar[str] = "dev.points.command.answered.v1"

    command_id: UUID
    user_id: str
    command: str
    outcome: str
    detail: dict[str, Any] = Field(default_factory=dict)
    answered_at: AwareDatetime


EVENT_TYPES: dict[str, type[Event]] = {
    cls.ce_type: cls for cls in (EventSubmitted, EventDecided, FraudInsightRaised, CouponIssued, CouponUsed,
                                 CouponRevoked, CommandAnswered)
}
