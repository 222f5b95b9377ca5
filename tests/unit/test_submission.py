from datetime import datetime, timedelta, timezone

import pytest

from services.ingest.submission import Rejected, accept
from shared.catalogue import CATALOGUE

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


def submit(**overrides):
    fields = dict(user_id="u1", event_type="habit_completed", event_time=NOW, nonce="abcdefgh",
                  payload={"habit_id": "h1"}, device_id=None, proof_type="none", now=NOW)
    return accept(**{**fields, **overrides})


def test_points_come_from_the_catalogue():
    assert submit().points == CATALOGUE["habit_completed"].points > 0


def test_an_unknown_event_type_is_refused():
    with pytest.raises(Rejected) as refused:
        submit(event_type="free_points")
    assert refused.value.slug == "unknown-event-type"


def test_a_missing_required_payload_field_is_refused():
    with pytest.raises(Rejected) as refused:
        submit(payload={})
    assert refused.value.errors[0]["pointer"] == "/payload/habit_id"


@pytest.mark.parametrize("offset", [timedelta(minutes=5, seconds=1), -timedelta(hours=24, seconds=1)])
def test_event_times_outside_the_window_are_stale(offset):
    with pytest.raises(Rejected) as refused:
        submit(event_time=NOW + offset)
    assert refused.value.slug == "stale-event"


@pytest.mark.parametrize("offset", [timedelta(minutes=5), -timedelta(hours=24), timedelta(0)])
def test_event_times_at_the_edges_of_the_window_are_accepted(offset):
    assert submit(event_time=NOW + offset).event_time == NOW + offset


def test_each_submission_gets_its_own_event_id():
    assert submit().event_id != submit().event_id
