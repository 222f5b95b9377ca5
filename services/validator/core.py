"""What the validator does with one record, and what it must publish because of it. Pure: the
runtime owns Kafka, the clock is passed in, and nothing here is written until the runtime commits
the transaction that carries the outputs, the changed state and the consumed offsets together."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.validator.review import finish_review, hold
from services.validator.rules import decide, untrusted_record
from services.validator.signals import RuleSet
from services.validator.state import Sighting, Sightings, UserState
from shared import topics
from shared.commands import HoldEvent, ReviewEvent
from shared.events import Event, EventDecided, EventSubmitted, FraudInsightRaised


@dataclass(frozen=True)
class Publish:
    topic: str
    key: str
    event: Event


@dataclass
class Handled:
    """Everything one record caused: records to publish (in order), new sightings, whose state changed."""

    publish: list[Publish] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)
    changed_user: str | None = None
    decision: EventDecided | None = None
    duplicate: bool = False
    # When the gateway received the submission decided here, for the decision-latency metric.
    received_at: datetime | None = None

    @property
    def insights(self) -> list[FraudInsightRaised]:
        return [p.event for p in self.publish if isinstance(p.event, FraudInsightRaised)]


def on_submission(event: EventSubmitted, state: UserState, sightings: Sightings, rules: RuleSet,
                  now: datetime) -> Handled:
    if state.already_decided(event):
        # Offered again (the gateway's repair timer, a replayed dead letter): its decision is in the
        # ledger already, and deciding again could contradict it.
        return Handled(duplicate=True)
    context, new = sightings.see(event)
    outcome = decide(event, state, context, rules, now)
    decision = outcome.decision
    state.remember(event)
    if decision.validation_status == "pending_review":
        state.hold_for_review(decision.model_dump(mode="json"), decision.decided_at)
    return Handled(
        publish=[*(Publish(topics.FRAUD, event.user_id, insight) for insight in outcome.insights),
                 Publish(topics.LEDGER, event.user_id, decision)],
        sightings=new, changed_user=event.user_id, decision=decision, received_at=event.received_at)


def on_review(command: ReviewEvent | HoldEvent, state: UserState, now: datetime) -> Handled:
    """An admin's verdict or hold; nothing when the event is not (or no longer) in that state."""
    result = finish_review(command, state, now) if isinstance(command, ReviewEvent) else hold(command, state, now)
    if result is None:
        return Handled()
    return Handled(publish=[Publish(topics.LEDGER, command.user_id, result)], changed_user=command.user_id,
                   decision=result)


def on_untrusted(user_id: str, reason: str, source: str, now: datetime) -> Handled:
    """A record on our topics that our keys did not sign: someone writes to Kafka who should not."""
    return Handled(publish=[Publish(topics.FRAUD, user_id, untrusted_record(user_id, reason, source, now))])
