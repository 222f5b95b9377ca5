"""The validator's work on each record, without Kafka: what it decides, publishes and remembers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import uuid4

from services.validator.core import on_review, on_submission, on_untrusted
from services.validator.signals import RuleSet
from services.validator.state import Sighting, Sightings, UserState
from shared import topics
from shared.commands import HoldEvent, ReviewEvent
from shared.events import EventDecided, EventSubmitted, FraudInsightRaised

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
RULES = RuleSet()


def submitted(at: datetime = T0, user: str = "u1", **extra) -> EventSubmitted:
    fields = dict(event_id=uuid4(), user_id=user, event_type="habit_completed", event_time=at, nonce=uuid4().hex,
                  payload={"habit_id": str(uuid4())}, points=10, received_at=at, body_hash="h")
    return EventSubmitted(**{**fields, **extra})


def review(event_id, decision: str = "approve", user: str = "u1") -> ReviewEvent:
    return ReviewEvent(command_id=uuid4(), user_id=user, issued_at=T0, event_id=event_id, admin="ada@example.com",
                       decision=decision, note="looked at it")


def test_an_ordinary_event_is_validated_and_its_decision_goes_to_the_ledger_keyed_by_user():
    state = UserState()
    event = submitted()

    handled = on_submission(event, state, Sightings(), RULES, T0)

    [out] = handled.publish
    assert (out.topic, out.key) == (topics.LEDGER, "u1")
    assert isinstance(out.event, EventDecided) and out.event.event_id == event.event_id
    assert out.event.validation_status == "validated" and out.event.points_delta == 10
    assert handled.changed_user == "u1" and state.already_decided(event)


def test_a_redelivered_submission_is_decided_once():
    state, sightings = UserState(), Sightings()
    event = submitted()
    first = on_submission(event, state, sightings, RULES, T0)

    again = on_submission(event, state, sightings, RULES, T0)

    assert first.decision is not None
    assert again.duplicate and again.publish == [] and again.changed_user is None


def test_events_under_a_second_apart_are_rejected_with_a_fraud_insight_published_first():
    state, sightings = UserState(), Sightings()
    on_submission(submitted(T0), state, sightings, RULES, T0)

    handled = on_submission(submitted(T0 + timedelta(milliseconds=300)), state, sightings, RULES, T0)

    assert handled.decision.validation_status == "rejected"
    assert [p.topic for p in handled.publish] == [topics.FRAUD, topics.LEDGER]
    insight = handled.publish[0].event
    assert isinstance(insight, FraudInsightRaised) and insight.insight_type == "rapid_fire_events"


def test_accounts_on_one_device_are_counted_across_users_and_each_pair_is_recorded_once():
    sightings = Sightings()
    outcomes = [on_submission(submitted(T0 + timedelta(minutes=i), user=f"farm-{i}", device_id="dev-1"),
                              UserState(), sightings, RULES, T0) for i in range(RULES.accounts_per_device)]
    again = on_submission(submitted(T0 + timedelta(hours=1), user="farm-0", device_id="dev-1"), UserState(),
                          sightings, RULES, T0)

    assert [o.sightings for o in outcomes[:2]] == [[Sighting("device", "dev-1", "farm-0")],
                                                  [Sighting("device", "dev-1", "farm-1")]]
    assert again.sightings == []  # seen before: nothing new to record
    assert "device_shared_by_accounts" not in outcomes[-2].decision.reasons
    assert "device_shared_by_accounts" in outcomes[-1].decision.reasons


def test_sightings_another_instance_recorded_count_here_too():
    sightings = Sightings()
    for n in range(RULES.accounts_per_ip):
        recorded = Sighting("ip", "ip-hash", f"neighbour-{n}")
        sightings.learn(Sighting.from_value(recorded.value()))

    handled = on_submission(submitted(client_ip_hash="ip-hash"), UserState(), sightings, RULES, T0)

    assert "many_accounts_on_ip" in handled.decision.reasons


def test_a_sighting_key_names_the_pair_whatever_characters_the_ids_hold():
    assert Sighting("device", "a|b", "c").key() != Sighting("device", "a", "b|c").key()
    assert Sighting("device", "d", "u").key() == Sighting("device", "d", "u").key()
    assert Sighting("ip", "d", "u").key() != Sighting("device", "d", "u").key()


def test_an_admin_approval_finishes_a_held_event_naming_the_admin():
    state = UserState()
    held = on_submission(submitted(attestation="invalid", attestation_reasons=("bad",)), state, Sightings(), RULES, T0)
    assert held.decision.validation_status == "pending_review"

    verdict = on_review(review(held.decision.event_id), state, T0 + timedelta(hours=1))

    [out] = verdict.publish
    assert out.topic == topics.LEDGER and out.event.validation_status == "validated"
    assert out.event.validated_by == "ada@example.com" and out.event.review_note == "looked at it"
    assert on_review(review(held.decision.event_id, "reject"), state, T0).publish == []  # decided once


def test_a_verdict_on_an_event_that_is_not_held_changes_nothing():
    state = UserState()
    decided = on_submission(submitted(), state, Sightings(), RULES, T0)

    verdict = on_review(review(decided.decision.event_id, "reject"), state, T0)

    assert verdict.publish == [] and verdict.changed_user is None


def test_holding_an_undecided_event_sends_it_to_review_and_the_late_submission_is_then_skipped():
    state = UserState()
    event = submitted()
    hold = HoldEvent(command_id=uuid4(), user_id="u1", issued_at=T0, event_id=event.event_id, admin="ops",
                     event_type=event.event_type, event_time=event.event_time, points=10, proof_type="none")

    held = on_review(hold, state, T0)
    late = on_submission(event, state, Sightings(), RULES, T0)

    assert held.decision.validation_status == "pending_review" and held.decision.validated_by == "ops"
    assert late.duplicate and late.publish == []


def test_a_record_our_keys_did_not_sign_raises_a_critical_insight():
    handled = on_untrusted("mallory", "signature does not match the record", "points.events.submitted/0/7", T0)

    [out] = handled.publish
    assert out.topic == topics.FRAUD and out.event.severity == "critical"
    assert out.event.evidence["source"] == "points.events.submitted/0/7"


def test_a_sighting_from_a_rolled_back_batch_is_written_again_by_the_retry():
    sightings = Sightings()
    event = submitted(device_id="dev-9")
    first = on_submission(event, UserState(), sightings, RULES, T0)
    sightings.rolled_back([s.key() for s in first.sightings])

    retry = on_submission(event, UserState(), sightings, RULES, T0)
    sightings.committed([s.key() for s in retry.sightings])
    later = on_submission(submitted(T0 + timedelta(hours=2), device_id="dev-9"), UserState(), sightings, RULES, T0)

    assert first.sightings == retry.sightings == [Sighting("device", "dev-9", "u1")]
    assert later.sightings == []  # committed: on the topic, not written again
    assert later.decision.reasons == ()  # still one account on the device, however often it was counted


def test_a_rejection_by_an_admin_is_recorded_with_a_spelled_out_reason():
    state = UserState()
    held = on_submission(submitted(attestation="invalid", attestation_reasons=("bad",)), state, Sightings(), RULES, T0)

    verdict = on_review(review(held.decision.event_id, "reject"), state, T0 + timedelta(hours=1))

    assert verdict.decision.reasons[-1] == "review_rejected"
