"""The decision rules. Pure functions of an event and what we remember of its user."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import uuid4

from shared.events import EventDecided, EventSubmitted, FraudInsightRaised, ValidationStatus, utcnow

RULE_SET = "spacing-v1"
RAPID_FIRE = "rapid_fire_events"
VALIDATOR = "validator"


@dataclass(frozen=True)
class Thresholds:
    validated_min: int = 60
    review_min: int = 30
    min_spacing_seconds: float = 1.0


@dataclass(frozen=True)
class Score:
    value: int
    reasons: tuple[str, ...]


BASE_TRUST = 85
ATTESTATION_EFFECT = {"valid": +15, "invalid": -45, "absent": 0, "unverifiable": 0}
MISSING_ATTESTATION_PENALTY = 35


def score(event: EventSubmitted, previous_event_time: datetime | None, thresholds: Thresholds) -> Score:
    """Trust 0..100 with the reasons that moved it. Events spaced under the minimum are bot-like."""
    value, reasons = BASE_TRUST + ATTESTATION_EFFECT[event.attestation], []
    if event.attestation == "valid":
        reasons.append("attestation_valid")
    elif event.attestation == "invalid":
        reasons.append("attestation_invalid")
    elif "attestation_missing" in event.attestation_reasons:
        value -= MISSING_ATTESTATION_PENALTY
        reasons.append("attestation_missing")
    if previous_event_time is not None:
        spacing = abs((event.event_time - previous_event_time).total_seconds())
        if spacing < thresholds.min_spacing_seconds:
            value = min(value, 20)
            reasons.append(RAPID_FIRE)
    return Score(max(0, min(100, value)), tuple(reasons))


def status_for(trust: int, thresholds: Thresholds) -> ValidationStatus:
    if trust >= thresholds.validated_min:
        return "validated"
    if trust >= thresholds.review_min:
        return "pending_review"
    return "rejected"


def decide(event: EventSubmitted, previous_event_time: datetime | None, thresholds: Thresholds) -> EventDecided:
    trust = score(event, previous_event_time, thresholds)
    return EventDecided(
        event_id=event.event_id,
        user_id=event.user_id,
        event_type=event.event_type,
        event_time=event.event_time,
        points_delta=event.points,
        proof_type=event.proof_type,
        validation_status=status_for(trust.value, thresholds),
        trust_score=trust.value,
        reasons=trust.reasons,
        rule_set=RULE_SET,
        validated_by=VALIDATOR,
        decided_at=utcnow(),
    )


def insights_for(event: EventSubmitted, decision: EventDecided) -> list[FraudInsightRaised]:
    """The fraud insights a decision raises, with the evidence behind them."""
    if RAPID_FIRE not in decision.reasons:
        return []
    return [FraudInsightRaised(
        insight_id=uuid4(), user_id=event.user_id, event_id=event.event_id, insight_type=RAPID_FIRE,
        severity="high", score=decision.trust_score,
        evidence={"event_type": event.event_type, "event_time": event.event_time.isoformat(),
                  "reasons": list(decision.reasons)},
        raised_at=decision.decided_at,
    )]


def untrusted_record(user_id: str, reason: str, source: str) -> FraudInsightRaised:
    """A record on our topics that our keys did not sign: someone is writing to Kafka who should not."""
    return FraudInsightRaised(
        insight_id=uuid4(), user_id=user_id, insight_type="bad_signature", severity="critical", score=0,
        evidence={"reason": reason, "source": source}, raised_at=utcnow(),
    )
