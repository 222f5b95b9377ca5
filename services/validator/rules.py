"""The decision rules. Pure functions of an event and what we remember of its user."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.events import EventDecided, EventSubmitted, ValidationStatus, utcnow

RULE_SET = "spacing-v1"
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


def score(event: EventSubmitted, previous_event_time: datetime | None, thresholds: Thresholds) -> Score:
    """Trust 0..100 with the reasons that lowered it. Events spaced under the minimum are bot-like."""
    if previous_event_time is not None:
        spacing = abs((event.event_time - previous_event_time).total_seconds())
        if spacing < thresholds.min_spacing_seconds:
            return Score(20, (f"events_spaced_under_{thresholds.min_spacing_seconds:g}s",))
    return Score(100, ())


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
