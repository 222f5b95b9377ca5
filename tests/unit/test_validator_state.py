from datetime import datetime, timedelta, timezone
from uuid import uuid4

from services.validator.state import UserState
from shared.events import EventSubmitted

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


def submitted(received: datetime, event_time: datetime | None = None) -> EventSubmitted:
    return EventSubmitted(event_id=uuid4(), user_id="u1", event_type="habit_completed",
                          event_time=event_time or received, nonce="n" * 8, points=10, received_at=received,
                          body_hash="h")


def test_a_redelivered_event_is_recognised_after_a_round_trip_through_the_table():
    event = submitted(T0)
    state = UserState()
    state.remember(event)
    assert UserState.from_dict(state.to_dict()).already_decided(event)
    assert not UserState.from_dict(state.to_dict()).already_decided(submitted(T0))


def test_old_event_ids_are_forgotten_after_the_dedup_horizon():
    old, new = submitted(T0), submitted(T0 + timedelta(hours=27))
    state = UserState()
    state.remember(old)
    state.remember(new)
    assert not state.already_decided(old) and state.already_decided(new)


def test_recent_event_times_are_kept_whatever_order_they_arrive_in():
    state = UserState()
    state.remember(submitted(T0, event_time=T0))
    state.remember(submitted(T0 + timedelta(seconds=1), event_time=T0 - timedelta(minutes=5)))
    assert sorted(state.recent_event_timestamps()) == \
        [(T0 - timedelta(minutes=5)).timestamp(), T0.timestamp()]
