from datetime import datetime, timezone
from uuid import uuid4

from services.projector.projection import Position, project
from shared.events import EventDecided, EventSubmitted

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
AT = Position("points.ledger", 2, 41)


def test_a_submission_becomes_a_pending_row_marked_as_not_authoritative():
    row = project(EventSubmitted(event_id=uuid4(), user_id="u1", event_type="habit_completed", event_time=NOW,
                                 nonce="abcdefgh", points=10, received_at=NOW, body_hash="h"), AT)
    assert (row.validation_status, row.points_delta, row.authoritative) == ("pending", 10, False)


def test_a_decision_becomes_an_authoritative_row_that_remembers_where_it_was_read():
    event_id = uuid4()
    row = project(EventDecided(event_id=event_id, user_id="u1", event_type="habit_completed", event_time=NOW,
                               points_delta=10, proof_type="none", validation_status="validated",
                               trust_score=100, rule_set="r", validated_by="validator", decided_at=NOW), AT)
    assert row.id == event_id and row.authoritative
    assert (row.source_topic, row.source_partition, row.source_offset) == ("points.ledger", 2, 41)
