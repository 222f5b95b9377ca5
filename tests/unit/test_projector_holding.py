"""Submissions held for their decision (services/projector/holding.py): which are written as pending,
and where a partition is read again from."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from aiokafka import TopicPartition

from services.projector.holding import Holding

P0, P1 = TopicPartition("points.events.submitted", 0), TopicPartition("points.events.submitted", 1)


@dataclass(frozen=True)
class Message:
    offset: int
    value: bytes


def submissions(first: int, count: int) -> tuple[list[Message], list[str]]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    return [Message(first + i, b'{"event_id": "%s", "user_id": "u"}' % i_d.encode()) for i, i_d in enumerate(ids)], ids


def test_a_submission_decided_within_the_moment_is_never_written_as_pending():
    holding = Holding(1.0)
    messages, ids = submissions(0, 3)
    holding.hold(P0, messages, now=10.0)
    holding.decided([ids[0], ids[2]], now=10.4)
    assert holding.due(10.9) == {}
    assert holding.due(11.0) == {P0: [messages[1]]}


def test_held_submissions_keep_the_partition_at_the_first_of_them():
    holding = Holding(1.0)
    early, _ = submissions(0, 2)
    late, _ = submissions(2, 2)
    holding.hold(P0, early, now=10.0)
    holding.hold(P0, late, now=10.5)
    assert holding.next_offsets() == {(P0.topic, 0): 0}
    holding.due(11.0)
    assert holding.next_offsets() == {(P0.topic, 0): 2}
    holding.due(11.5)
    assert holding.next_offsets() == {(P0.topic, 0): 4}


def test_a_decision_read_before_its_submission_still_stands_in_for_it():
    holding = Holding(1.0)
    messages, ids = submissions(0, 1)
    holding.decided(ids, now=10.0)
    holding.hold(P0, messages, now=10.5)
    assert holding.due(11.5) == {}


def test_without_a_moment_a_decision_read_before_still_stands_in():
    holding = Holding(0.0)
    messages, ids = submissions(0, 2)
    holding.hold(P0, messages, now=10.0)
    holding.decided(ids[:1], now=10.0)
    assert holding.due(10.0) == {P0: [messages[1]]}
    assert holding.next_offsets() == {(P0.topic, 0): 2}


def test_an_unreadable_record_is_released_to_be_checked_and_set_aside():
    holding = Holding(1.0)
    holding.hold(P0, [Message(0, b"\x00not json")], now=10.0)
    holding.decided(["anything"], now=10.1)
    assert [m.offset for m in holding.due(11.0)[P0]] == [0]


def test_a_partition_given_up_is_forgotten_and_the_others_go_on():
    holding = Holding(1.0)
    holding.hold(P0, submissions(0, 2)[0], now=10.0)
    kept, _ = submissions(5, 1)
    holding.hold(P1, kept, now=10.0)
    holding.forget([P0])
    assert holding.next_offsets() == {(P1.topic, 1): 5}
    assert holding.due(11.0) == {P1: kept}
    assert not holding.any_due(12.0)
