from datetime import datetime, timedelta, timezone
from uuid import uuid4

from services.validator.rules import decide, status_for
from services.validator.signals import RuleSet
from services.validator.state import Context, UserState
from shared.events import EventSubmitted

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
RULES = RuleSet()


def submitted(at: datetime, **extra) -> EventSubmitted:
    fields = dict(event_id=uuid4(), user_id="u1", event_type="habit_completed", event_time=at, nonce="n" * 8,
                  payload={"habit_id": str(uuid4())}, points=10, received_at=at, body_hash="h")
    return EventSubmitted(**{**fields, **extra})


def after(*events: EventSubmitted) -> UserState:
    state = UserState()
    for event in events:
        state.remember(event)
    return state


def test_a_users_first_event_is_validated_with_a_trust_of_at_least_60():
    outcome = decide(submitted(T0), UserState(), Context(), RULES, T0)
    assert outcome.decision.validation_status == "validated" and outcome.decision.trust_score >= 60
    assert outcome.decision.points_delta == 10 and outcome.insights == ()


def test_events_under_a_second_apart_drop_below_30_are_rejected_and_raise_an_insight():
    first = submitted(T0)
    outcome = decide(submitted(T0 + timedelta(milliseconds=400)), after(first), Context(), RULES, T0)
    assert outcome.decision.validation_status == "rejected" and outcome.decision.trust_score < 30
    assert "rapid_fire_events" in outcome.decision.reasons
    assert [i.insight_type for i in outcome.insights] == ["rapid_fire_events"]
    assert outcome.insights[0].evidence["closest_seconds"] == 0.4


def test_the_decision_names_its_rule_set_so_it_can_be_explained_and_replayed():
    outcome = decide(submitted(T0), UserState(), Context(), RULES, T0)
    assert outcome.decision.rule_set == RULES.version and outcome.decision.validated_by == "validator"


def test_thresholds_split_scores_into_the_seeds_three_outcomes():
    assert [status_for(s, RULES) for s in (100, 60, 59, 30, 29, 0)] == [
        "validated", "validated", "pending_review", "pending_review", "rejected", "rejected"]


def test_thresholds_and_weights_are_configuration():
    lenient = RuleSet(validated_min=50, attestation_invalid=-10)
    outcome = decide(submitted(T0, attestation="invalid"), UserState(), Context(), lenient, T0)
    assert outcome.decision.validation_status == "validated"
    assert decide(submitted(T0, attestation="invalid"), UserState(), Context(), RULES, T0).decision.validation_status \
        == "pending_review"


def test_a_valid_attestation_raises_trust():
    plain = decide(submitted(T0), UserState(), Context(), RULES, T0).decision
    attested = decide(submitted(T0, attestation="valid"), UserState(), Context(), RULES, T0).decision
    assert attested.trust_score > plain.trust_score and "attestation_valid" in attested.reasons


def test_a_missing_attestation_counts_only_where_it_is_required():
    missing = decide(submitted(T0, attestation_reasons=("attestation_missing",)), UserState(), Context(), RULES, T0)
    assert missing.decision.validation_status == "pending_review"
    assert decide(submitted(T0, attestation="unverifiable"), UserState(), Context(), RULES, T0).decision \
        .validation_status == "validated"


def test_the_same_inputs_always_give_the_same_decision():
    state, event = after(submitted(T0 - timedelta(minutes=5))), submitted(T0)
    first = decide(event, state, Context(accounts_on_device=4), RULES, T0)
    again = decide(event, state, Context(accounts_on_device=4), RULES, T0)
    # Whole records, insight ids included: a batch retried after an abort raises no second insight.
    assert first == again and first.insights
    assert first.decision.decided_at == T0


def test_a_threshold_set_to_its_default_keeps_the_version_and_another_value_gets_its_own(monkeypatch):
    from services.validator.signals import rule_set
    from shared.settings import Settings

    monkeypatch.setenv("POINTS_ENV", "test")
    assert rule_set(Settings()).version == RuleSet().version
    monkeypatch.setenv("POINTS_VALIDATED_MIN_SCORE", str(RuleSet().validated_min))
    assert rule_set(Settings()) == RuleSet()
    monkeypatch.setenv("POINTS_VALIDATED_MIN_SCORE", "75")
    stricter = rule_set(Settings())
    assert stricter.validated_min == 75 and stricter.version.startswith(f"{RuleSet().version}+")
    monkeypatch.setenv("POINTS_TRUST_RULES", '{"validated_min": 60}')  # the JSON wins, back to the defaults
    assert rule_set(Settings()) == RuleSet()
