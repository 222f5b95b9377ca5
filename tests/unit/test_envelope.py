from datetime import datetime, timezone
from uuid import uuid4

import pytest

from shared.envelope import UnreadableRecord, from_record, to_record
from shared.events import EventDecided, EventSubmitted

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


def test_a_record_carries_cloudevents_binary_headers_and_round_trips():
    event = EventSubmitted(event_id=uuid4(), user_id="u1", event_type="habit_completed", event_time=NOW,
                           nonce="abcdefgh", payload={"habit_id": "h"}, points=10, received_at=NOW, body_hash="h")
    record = to_record(event, key="u1", source="/points/ingest")
    headers = dict(record.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"dev.points.event.submitted.v1"
    assert headers["ce_source"] == b"/points/ingest"
    assert headers["content-type"] == b"application/json"
    assert record.key == b"u1"
    assert from_record(record.key, record.value, record.headers) == event


def test_a_decision_round_trips_with_its_reasons():
    event = EventDecided(event_id=uuid4(), user_id="u1", event_type="habit_completed", event_time=NOW,
                         points_delta=10, proof_type="none", validation_status="rejected", trust_score=20,
                         reasons=("rapid_fire_events",), rule_set="r", validated_by="validator",
                         decided_at=NOW)
    record = to_record(event, key="u1", source="/points/validator")
    assert from_record(record.key, record.value, record.headers) == event


@pytest.mark.parametrize("value,headers", [
    (b"{}", []),
    (b"not json", [("ce_specversion", b"1.0"), ("ce_type", b"dev.points.event.submitted.v1"),
                   ("ce_id", b"1"), ("ce_source", b"/x"), ("content-type", b"application/json")]),
    (b"{}", [("ce_specversion", b"1.0"), ("ce_type", b"com.example.other"), ("ce_id", b"1"),
             ("ce_source", b"/x"), ("content-type", b"application/json")]),
    (b'{"event_id": "nope"}', [("ce_specversion", b"1.0"), ("ce_type", b"dev.points.event.decided.v1"),
                               ("ce_id", b"1"), ("ce_source", b"/x"), ("content-type", b"application/json")]),
])
def test_foreign_or_broken_records_are_reported_as_unreadable(value, headers):
    with pytest.raises(UnreadableRecord):
        from_record(b"u1", value, headers)


def test_events_are_immutable():
    event = EventSubmitted(event_id=uuid4(), user_id="u1", event_type="habit_completed", event_time=NOW,
                           nonce="abcdefgh", points=10, received_at=NOW, body_hash="h")
    with pytest.raises(Exception):
        event.points = 1000


def test_a_record_reads_through_the_cloudevents_sdk_as_any_other_consumer_reads_it():
    # Our services read a checked record by its type alone; a consumer of the public topics reads it
    # with any CloudEvents SDK, which checks every attribute.
    from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
    from cloudevents.core.formats.json import JSONFormat

    event = EventSubmitted(event_id=uuid4(), user_id="u1", event_type="habit_completed", event_time=NOW,
                           nonce="abcdefgh", payload={"habit_id": "h"}, points=10, received_at=NOW, body_hash="h")
    record = to_record(event, key="u1", source="/points/ingest")
    read = from_binary(KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value), JSONFormat())
    assert read.get_type() == "dev.points.event.submitted.v1"
    assert read.get_source() == "/points/ingest"
    assert read.get_subject() == "u1"
    assert EventSubmitted.model_validate(read.get_data()) == event
