"""How a log record becomes a read-model row. Pure: no I/O."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cache
from uuid import UUID

from shared.events import (CommandAnswered, CouponIssued, CouponRevoked, CouponUsed, Event, EventDecided,
                           EventSubmitted, FraudInsightRaised)


class Columns:
    """A row whose fields, in declaration order, are the columns the store's statements list."""

    @classmethod
    @cache  # once per class: it is asked for every row the projector writes
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.metadata.get("column", True))

    def as_tuple(self) -> tuple:
        return tuple(getattr(self, name) for name in self.columns())


@dataclass(frozen=True)
class Position:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class EventRow(Columns):
    id: UUID
    user_id: str
    event_type: str
    event_time: datetime
    points_delta: int
    proof_type: str
    validation_status: str
    trust_score: int | None
    reasons: list[str]
    rule_set: str | None
    validated_by: str | None
    decided_at: datetime | None
    related_entity_type: str | None
    related_entity_id: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    review_note: str | None
    # A submission only fills a gap; a decision always wins, whichever topic was read first.
    authoritative: bool = field(metadata={"column": False})


@dataclass(frozen=True)
class InsightRow(Columns):
    id: UUID
    user_id: str
    event_id: UUID | None
    insight_type: str
    severity: str
    score: int
    evidence: dict
    created_at: datetime


@dataclass(frozen=True)
class CouponIssuedRow(Columns):
    coupon_id: UUID
    redemption_id: UUID
    user_id: str
    template_id: UUID
    code_hash: str
    code_key_id: str
    points_cost: int
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class CouponStatusRow:
    coupon_id: UUID
    status: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class AnswerRow(Columns):
    command_id: UUID
    user_id: str
    command: str
    outcome: str
    detail: dict
    answered_at: datetime


Row = EventRow | InsightRow | CouponIssuedRow | CouponStatusRow | AnswerRow


def project(event: Event, at: Position) -> Row | None:
    if isinstance(event, EventSubmitted):
        return EventRow(
            id=event.event_id, user_id=event.user_id, event_type=event.event_type,
            event_time=event.event_time, points_delta=event.points, proof_type=event.proof_type,
            validation_status="pending", trust_score=None, reasons=[], rule_set=None, validated_by=None,
            decided_at=None, related_entity_type=None, related_entity_id=None,
            source_topic=at.topic, source_partition=at.partition, source_offset=at.offset, review_note=None,
            authoritative=False,
        )
    if isinstance(event, EventDecided):
        return EventRow(
            id=event.event_id, user_id=event.user_id, event_type=event.event_type,
            event_time=event.event_time, points_delta=event.points_delta, proof_type=event.proof_type,
            validation_status=event.validation_status, trust_score=event.trust_score,
            reasons=list(event.reasons), rule_set=event.rule_set, validated_by=event.validated_by,
            decided_at=event.decided_at, related_entity_type=event.related_entity_type,
            related_entity_id=event.related_entity_id,
            source_topic=at.topic, source_partition=at.partition, source_offset=at.offset,
            review_note=event.review_note, authoritative=True,
        )
    if isinstance(event, FraudInsightRaised):
        return InsightRow(id=event.insight_id, user_id=event.user_id, event_id=event.event_id,
                          insight_type=event.insight_type, severity=event.severity, score=event.score,
                          evidence=event.evidence, created_at=event.raised_at)
    if isinstance(event, CouponIssued):
        return CouponIssuedRow(event.coupon_id, event.redemption_id, event.user_id, event.template_id,
                               event.code_hash, event.code_key_id, event.points_cost, event.issued_at,
                               event.expires_at)
    if isinstance(event, CouponUsed):
        return CouponStatusRow(event.coupon_id, "redeemed", event.merchant, event.used_at)
    if isinstance(event, CouponRevoked):
        return CouponStatusRow(event.coupon_id, "revoked", event.admin, event.revoked_at)
    if isinstance(event, CommandAnswered):
        return AnswerRow(event.command_id, event.user_id, event.command, event.outcome, event.detail,
                         event.answered_at)
    return None
