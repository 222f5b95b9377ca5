"""Each trust signal on its own."""
from datetime import datetime, timedelta, timezone
from uuid import uuid4

from services.validator import signals
from services.validator.signals import RuleSet
from services.validator.state import Context, UserState
from shared.events import EventSubmitted

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
RULES = RuleSet()


def event(at: datetime, *, received: datetime | None = None, habit: str | None = None, **extra) -> EventSubmitted:
    fields = dict(event_id=uuid4(), user_id="u1", event_type="habit_completed", event_time=at, nonce="n" * 8,
                  payload={"habit_id": habit or str(uuid4())}, points=10, received_at=received or at, body_hash="h")
    return EventSubmitted(**{**fields, **extra})


def history(*events: EventSubmitted) -> UserState:
    state = UserState()
    for e in events:
        state.remember(e)
    return state


def reasons(findings) -> list[str]:
    return [f.reason for f in findings]


def test_spacing_flags_events_under_a_second_apart_by_event_time():
    assert reasons(signals.spacing(event(T0 + timedelta(seconds=0.5)), history(event(T0)), RULES)) == \
        ["rapid_fire_events"]
    assert signals.spacing(event(T0 + timedelta(seconds=2)), history(event(T0)), RULES) == []
    # The seed's bound is "under a second": a second to the microsecond, at any time of day, is not.
    for micro in (1, 123457, 999999):
        at = T0 + timedelta(hours=13, microseconds=micro)
        assert signals.spacing(event(at + timedelta(seconds=1)), history(event(at)), RULES) == []
        assert reasons(signals.spacing(event(at + timedelta(microseconds=999999)), history(event(at)), RULES)) == \
            ["rapid_fire_events"]


def test_an_offline_batch_with_real_spacing_is_not_rapid_fire():
    sync = T0 + timedelta(hours=3)
    earlier = [event(T0 + timedelta(minutes=30 * i), received=sync) for i in range(4)]
    assert signals.spacing(event(T0 + timedelta(hours=2), received=sync), history(*earlier), RULES) == []


def test_velocity_flags_the_21st_event_in_an_hour():
    past = [event(T0 + timedelta(minutes=2 * i)) for i in range(20)]
    assert reasons(signals.velocity(event(T0 + timedelta(minutes=41)), history(*past), RULES)) == ["velocity_hourly"]
    assert signals.velocity(event(T0 + timedelta(minutes=41)), history(*past[:19]), RULES) == []


def test_daily_cap_flags_completions_beyond_what_the_catalogue_allows():
    past = [event(T0 + timedelta(minutes=10 * i)) for i in range(20)]
    finding = signals.daily_cap(event(T0 + timedelta(hours=4)), history(*past), RULES)
    assert reasons(finding) == ["daily_cap_exceeded"] and finding[0].evidence["cap"] == 20


def test_clock_skew_flags_future_times_and_mildly_late_syncs():
    assert reasons(signals.clock_skew(event(T0 + timedelta(minutes=3), received=T0), UserState(), RULES)) == \
        ["future_event_time"]
    assert signals.clock_skew(event(T0 + timedelta(seconds=30), received=T0), UserState(), RULES) == []
    late = signals.clock_skew(event(T0 - timedelta(hours=20), received=T0), UserState(), RULES)
    assert reasons(late) == ["late_sync"] and late[0].severity is None


def test_many_accounts_on_one_device_or_address_are_flagged():
    assert reasons(signals.shared_device(event(T0), Context(accounts_on_device=3), RULES)) == \
        ["device_shared_by_accounts"]
    assert signals.shared_device(event(T0), Context(accounts_on_device=2, accounts_on_ip=9), RULES) == []
    assert reasons(signals.shared_device(event(T0), Context(accounts_on_ip=10), RULES)) == ["many_accounts_on_ip"]


def test_a_burst_after_weeks_of_silence_is_flagged_but_a_single_return_is_not():
    long_ago = event(T0 - timedelta(days=20))
    burst = [event(T0 + timedelta(minutes=i)) for i in range(4)]
    assert reasons(signals.burst_after_silence(event(T0 + timedelta(minutes=5)), history(long_ago, *burst),
                                               RULES)) == ["burst_after_silence"]
    assert signals.burst_after_silence(event(T0), history(long_ago), RULES) == []


def test_the_same_claim_sent_again_with_a_fresh_nonce_is_a_replay():
    original = event(T0, habit="h1")
    replay = event(T0, received=T0 + timedelta(minutes=5), habit="h1")
    assert reasons(signals.duplicate_payload(replay, history(original), RULES)) == ["duplicate_payload"]
    same_habit_later = event(T0 + timedelta(minutes=5), habit="h1")
    assert signals.duplicate_payload(same_habit_later, history(original), RULES) == []


def test_metronomic_intervals_are_flagged_and_human_ones_are_not():
    timer = [event(T0 + timedelta(minutes=15 * i)) for i in range(6)]
    assert reasons(signals.metronome(event(T0 + timedelta(minutes=90)), history(*timer), RULES)) == \
        ["metronomic_timing"]
    human = [event(T0 + timedelta(minutes=m)) for m in (0, 7, 31, 40, 95, 101)]
    assert signals.metronome(event(T0 + timedelta(minutes=180)), history(*human), RULES) == []


def test_attestation_verdicts_move_trust_both_ways():
    assert signals.attestation(event(T0, attestation="valid"), RULES)[0].effect > 0
    assert signals.attestation(event(T0, attestation="invalid"), RULES)[0].effect < 0
    assert signals.attestation(event(T0, attestation="unverifiable"), RULES) == []
