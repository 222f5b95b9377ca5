"""The gateway's reader of the redeemer's answers reads only while a request waits for one, and a
request that comes after a rest still gets its answer, however soon it is written."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from services.ingest.publisher import KafkaPublisher
from services.ingest.replies import ReplyWaiter
from shared import topics
from shared.events import CommandAnswered, utcnow
from shared.signing import keyring_from, signer_from
from tests.helpers import new_user

pytestmark = pytest.mark.integration


@pytest.fixture
async def answers(settings):
    """(the waiter, a function that writes an answer to a command id the way the redeemer does)."""
    waiter = ReplyWaiter(settings.kafka_bootstrap_servers, keyring_from(settings), timeout=10)
    publisher = KafkaPublisher(settings.kafka_bootstrap_servers, signer_from(settings))
    await publisher.start()
    await waiter.start()

    async def answer(command_id: uuid.UUID, outcome: str = "redeemed") -> None:
        user = new_user()
        await publisher.publish(topics.REPLIES, CommandAnswered(
            command_id=command_id, user_id=user, command="redeem", outcome=outcome, answered_at=utcnow()), key=user)

    yield waiter, answer
    await waiter.stop()
    await publisher.stop()


def resting(waiter: ReplyWaiter) -> bool:
    return waiter.consumer.paused() == waiter.consumer.assignment()


async def test_with_nobody_waiting_no_answers_are_fetched(answers):
    waiter, _ = answers
    assert resting(waiter)
    command = uuid.uuid4()
    await waiter.expect(command)
    assert not waiter.consumer.paused()
    waiter.forget(command)
    assert resting(waiter)


async def test_an_answer_written_at_once_after_a_rest_reaches_its_request(answers):
    waiter, answer = answers
    for _ in range(3):  # rest, wake, answer, rest again
        command = uuid.uuid4()
        await waiter.expect(command)
        await answer(command)
        got = await waiter.wait(command, timeout=10)
        assert got is not None and got.command_id == command
        assert resting(waiter)


async def test_requests_waiting_together_each_get_their_own_answer(answers):
    waiter, answer = answers
    commands = [uuid.uuid4() for _ in range(20)]
    await asyncio.gather(*(waiter.expect(c) for c in commands))
    await asyncio.gather(*(answer(c, outcome=f"outcome-{i}") for i, c in enumerate(commands)))
    got = await asyncio.gather(*(waiter.wait(c, timeout=10) for c in commands))
    assert [g.outcome for g in got] == [f"outcome-{i}" for i in range(len(commands))]
    assert resting(waiter)


async def test_answers_written_during_a_rest_are_skipped_not_read_through(answers):
    """Written while nobody here waited, they answer other gateways' commands; a gateway idle for a
    day must not read a day of them before its next answer."""
    waiter, answer = answers
    earlier = uuid.uuid4()
    await answer(earlier)
    await waiter.expect(earlier)
    assert await waiter.wait(earlier, timeout=2) is None
