"""The throughput steps of `make bench` send what honest users send, as the trust rules judge it."""
from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from uuid import uuid4

from deploy.knee import people
from services.validator.core import on_submission
from services.validator.signals import RuleSet
from services.validator.state import Sightings, UserState
from shared.events import EventSubmitted

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)


def test_a_step_offers_its_rate_over_its_length():
    count, plan = people(60_000, 1000.0, random.Random(1))
    assert len(plan) == 60_000 and len({user for _, user in plan}) == count
    assert plan == sorted(plan)
    assert 59.0 < plan[-1][0] <= 60.0
    # Every second of the step carries its share, give or take the jitter at the edges.
    per_second = defaultdict(int)
    for offset, _ in plan:
        per_second[int(offset)] += 1
    assert all(900 <= per_second[s] <= 1100 for s in range(2, 58))


def test_the_trust_rules_validate_every_event_of_a_step():
    count, plan = people(15_000, 250.0, random.Random(2))
    by_user = defaultdict(list)
    for offset, user in plan:
        by_user[user].append(offset)
    rules, sightings = RuleSet(), Sightings()
    decided = defaultdict(int)
    for user in list(by_user)[:60]:
        state = UserState()
        for n, offset in enumerate(by_user[user]):
            at = T0 + timedelta(seconds=offset)
            event = EventSubmitted(event_id=uuid4(), user_id=f"u{user}", event_type="habit_completed",
                                   event_time=at, nonce=uuid4().hex, payload={"habit_id": f"h{n % 7}"},
                                   points=10, received_at=at, body_hash="h")
            handled = on_submission(event, state, sightings, rules, at)
            decided[(handled.decision.validation_status, handled.decision.reasons)] += 1
    assert decided == {("validated", ()): sum(len(by_user[u]) for u in list(by_user)[:60])}
