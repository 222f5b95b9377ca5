"""From findings to a decision. Pure: the same event, state and rule set always decide the same."""
from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid4

from services.validator.signals import Finding, RuleSet, all_findings
from services.validator.state import Context, UserState
from shared.events import EventDecided, EventSubmitted, FraudInsightRaised, ValidationStatus, utcnow

VALIDATOR = "validator"
RAPID_FIRE = "rapid_fire_events"


@dataclass(frozen=True)
class Score:
    value: int
    findings: tuple[Finding, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.reason for f in self.findings)


def score(findings: list[Finding], rules: RuleSet) -> Score:
    value = rules.base + sum(f.effect for f in findings)
    for cap in (f.cap for f in findings if f.cap is not None):
        value = min(value, cap)
    return Score(max(0, min(100, value)), tuple(findings))


def status_for(trust: int, rules: RuleSet) -> ValidationStatus:
    if trust >= rules.validated_min:
        return "validated"
    if trust >= rules.review_min:
        return "pending_review"
    return "rejected"


@dataclass(frozen=True)
class Outcome:
    decision: EventDecided
    insights: tuple[FraudInsightRaised, ...]


def decide(event: EventSubmitted, state: UserState, context: Context, rules: RuleSet) -> Outcome:
    trust = score(all_findings(event, state, context, rules), rules)
    decision = EventDecided(
        event_id=event.event_id, user_id=event.user_id, event_type=event.event_type, event_time=event.event_time,
        points_delta=event.points, proof_type=event.proof_type, validation_status=status_for(trust.value, rules),
        trust_score=trust.value, reasons=trust.reasons, rule_set=rules.version, validated_by=VALIDATOR,
        decided_at=utcnow(),
    )
    insights = tuple(
        FraudInsightRaised(insight_id=uuid4(), user_id=event.user_id, event_id=event.event_id,
                           insight_type=finding.reason, severity=finding.severity, score=trust.value,
                           evidence={**finding.evidence, "event_type": event.event_type,
                                     "rule_set": rules.version}, raised_at=decision.decided_at)
        for finding in trust.findings if finding.severity is not None and decision.validation_status != "validated"
    )
    return Outcome(decision, insights)


def untrusted_record(user_id: str, reason: str, source: str) -> FraudInsightRaised:
    """A record on our topics that our keys did not sign: someone is writing to Kafka who should not."""
    return FraudInsightRaised(
        insight_id=uuid4(), user_id=user_id, insight_type="bad_signature", severity="critical", score=0,
        evidence={"reason": reason, "source": source}, raised_at=utcnow(),
    )
