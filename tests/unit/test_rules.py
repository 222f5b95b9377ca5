from datetime import datetime, timedelta, timezone
from uuid import uuid4

from services.validator.rules import Thresholds, decide, status_for
from shared.events import EventSubmitted

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
DEFAULTS = Thresholds()


def submitted(at: datetime, points: int = 10, **extra) -> EventSubmitted:
    return EventSubmitted(event_id=uuid4(), user_id="u1", event_type="habit_completed", event_time=at,
                          nonce="n" * 8, payload={"habit_id": "h"}, points=points, received_at=at, body_hash="h",
                          **extra)


def test_a_users_first_event_is_validated_with_high_trust():
    decision = decide(submitted(T0), None, DEFAULTS)
    assert decision.validation_status == "validated" and decision.trust_score >= 60
    assert decision.points_delta == 10


def test_a_valid_attestation_raises_trust_and_a_failed_one_sends_the_event_to_review():
    plain = decide(submitted(T0), None, DEFAULTS)
    attested = decide(submitted(T0, attestation="valid"), None, DEFAULTS)
    failed = decide(submitted(T0, attestation="invalid"), None, DEFAULTS)
    assert attested.trust_score > plain.trust_score and "attestation_valid" in attested.reasons
    assert failed.validation_status == "pending_review" and "attestation_invalid" in failed.reasons


def test_a_missing_attestation_counts_only_where_it_is_required():
    missing = decide(submitted(T0, attestation_reasons=("attestation_missing",)), None, DEFAULTS)
    assert missing.validation_status == "pending_review" and "attestation_missing" in missing.reasons
    assert decide(submitted(T0, attestation="unverifiable"), None, DEFAULTS).validation_status == "validated"


def test_an_event_under_a_second_after_the_previous_one_is_rejected_with_a_reason():
    decision = decide(submitted(T0 + timedelta(milliseconds=400)), T0, DEFAULTS)
    assert decision.validation_status == "rejected"
    assert decision.trust_score < 30
    assert "rapid_fire_events" in decision.reasons


def test_an_event_a_second_or_more_after_the_previous_one_is_validated():
    assert decide(submitted(T0 + timedelta(seconds=1)), T0, DEFAULTS).validation_status == "validated"


def test_the_decision_names_its_rule_set_and_the_validator():
    decision = decide(submitted(T0), None, DEFAULTS)
    assert decision.rule_set and decision.validated_by == "validator"


def test_thresholds_split_scores_into_the_seeds_three_outcomes():
    assert [status_for(s, DEFAULTS) for s in (100, 60, 59, 30, 29, 0)] == [
        "validated", "validated", "pending_review", "pending_review", "rejected", "rejected"]


def test_thresholds_are_configuration():
    assert status_for(55, Thresholds(validated_min=50)) == "validated"
