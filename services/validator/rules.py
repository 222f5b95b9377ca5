"""From findings to a decision. Pure: the same event, state and rule set always decide the same."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from services.validator.signals import Finding, RuleSet, all_findings
from services.validator.state import Context, UserState
from shared.events import EventDecided, EventSubmitted, FraudInsightRaised, ValidationStatus

VALIDATOR = "validator"
_INSIGHTS = uuid5(NAMESPACE_URL, "https://points.dev/fraud-insights")


def insight_id(*about: object) -> UUID:
    """An insight's id follows from what it is about, so deciding the same record again (a batch
    retried after an aborted transaction) raises the same insight, not a second one."""
    return uuid5(_INSIGHTS, "/".join(map(str, about)))


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


def decide(event: EventSubmitted, state: UserState, context: Context, rules: RuleSet, now: datetime) -> Outcome:
    trust = score(all_findings(event, state, context, rules), rules)
    decision = EventDecided(
        event_id=event.event_id, user_id=event.user_id, event_type=event.event_type, event_time=event.event_time,
        points_delta=event.points, proof_type=event.proof_type, validation_status=status_for(trust.value, rules),
        trust_score=trust.value, reasons=trust.reasons, rule_set=rules.version, validated_by=VALIDATOR,
        decided_at=now,
    )
    insights = tuple(
        FraudInsightRaised(insight_id=insight_id(event.event_id, finding.reason), user_id=event.user_id, event_id=event.event_id,
                           insight_type=finding.reason, severity=finding.severity, score=trust.value,
                           evidence={**finding.evidence, "event_type": event.event_type,
                                     "rule_set": rules.version}, raised_at=decision.decided_at)
        for finding in trust.findings if finding.severity is not None and decision.validation_status != "validated"
    )
    return Outcome(decision, insights)


def untrusted_record(user_id: str, reason: str, source: str, now: datetime) -> FraudInsightRaised:
    """A record on our topics that our keys did not sign: someone is writing to Kafka who should not."""
    return FraudInsightRaised(
        insight_id=insight_id(source, "bad_signature"), user_id=user_id, insight_type="bad_signature",
        severity="critical", score=0, evidence={"reason": reason, "source": source}, raised_at=now,
    )
