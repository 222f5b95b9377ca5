"""The validator's memory of one user against a model: every event it was shown, kept in a list.

Events arrive roughly in the order the gateways received them (two gateways may be a few seconds
apart) and may be delivered again after a crash. Whatever the sequence, a redelivery inside the
dedup horizon is recognised, the counts the signals ask for are those of the plain list, and the
state reads back from its changelog the same.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from uuid import uuid4

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.validator.state import DEDUP_HORIZON, RECENT_HORIZON, UserState
from shared.events import EventSubmitted

START = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)


class UserStateModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.state = UserState()
        self.now = START
        self.shown: list[EventSubmitted] = []  # every event remembered, once each

    def newest(self) -> datetime:
        return max((e.received_at for e in self.shown), default=START)

    def deliver(self, event: EventSubmitted) -> None:
        """What the validator's core does with a delivery: decide it, unless it was decided already."""
        if not self.state.already_decided(event):
            self.state.remember(event)
            self.shown.append(event)

    @rule(skew=st.integers(-5, 0), event_type=st.sampled_from(["habit_completed", "streak_milestone"]),
          late=st.integers(0, 3600))
    def an_event_arrives(self, skew, event_type, late):
        received = self.now + timedelta(seconds=skew)
        self.deliver(EventSubmitted(
            event_id=uuid4(), user_id="u1", event_type=event_type, event_time=received - timedelta(seconds=late),
            nonce=uuid4().hex, points=10, received_at=received, body_hash="h", payload={"n": len(self.shown)}))

    @precondition(lambda self: self.shown)
    @rule(data=st.data())
    def an_event_is_delivered_again(self, data):
        event = data.draw(st.sampled_from(self.shown))
        within = event.received_at >= self.newest() - DEDUP_HORIZON
        count = len(self.shown)
        self.deliver(event)
        if within:
            assert len(self.shown) == count, "a redelivery inside the dedup horizon was decided again"

    @rule(step=st.sampled_from([timedelta(seconds=1), timedelta(minutes=10), timedelta(hours=5),
                                timedelta(hours=30)]))
    def time_passes(self, step):
        self.now += step

    @rule()
    def restart_from_the_changelog(self):
        stored = json.loads(json.dumps(self.state.to_dict()))
        restored = UserState.from_dict(stored)
        assert restored == self.state
        self.state = restored

    # -- what must always hold -----------------------------------------------------------------
    @invariant()
    def recent_events_are_those_inside_the_horizon(self):
        horizon = self.newest() - RECENT_HORIZON
        kept = sorted(e.received_at.timestamp() for e in self.shown if e.received_at >= horizon)
        assert self.state.recent_received() == kept

    @invariant()
    def counts_in_a_window_are_the_lists(self):
        for window in (timedelta(minutes=1), timedelta(hours=1), timedelta(hours=24)):
            since = self.now - window
            expected = sum(1 for e in self.shown if e.received_at > since
                           and e.received_at >= self.newest() - RECENT_HORIZON)
            assert self.state.received_within(self.now, window) == expected

    @invariant()
    def activity_before_the_recent_window_is_summarised(self):
        horizon = self.newest() - RECENT_HORIZON
        dropped = [e.received_at.timestamp() for e in self.shown if e.received_at < horizon]
        assert self.state.last_activity == (max(dropped) if dropped else None)

    @invariant()
    def same_type_counts_per_day_are_the_lists(self):
        horizon = self.newest() - RECENT_HORIZON
        kept = [e for e in self.shown if e.received_at >= horizon]
        for probe in kept[-3:]:
            day = probe.event_time.astimezone(timezone.utc).date()
            expected = sum(1 for e in kept if e.event_type == probe.event_type
                           and e.event_time.astimezone(timezone.utc).date() == day)
            assert self.state.same_type_on_day(probe) == expected

    @invariant()
    def the_same_payload_is_recognised_inside_the_window(self):
        if self.shown:
            newest = max(self.shown, key=lambda e: e.received_at)
            assert self.state.seen_payload(newest, timedelta(hours=1))


UserStateModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40, derandomize=True,
                                            deadline=None, suppress_health_check=[HealthCheck.too_slow])
test_the_validators_memory_of_a_user_agrees_with_the_list_of_what_it_was_shown = UserStateModel.TestCase
