"""The read-process-write loop the validator and the redeemer share (shared/transactional.py), on
topics of its own: a partition fenced by a stale owner comes back, one whose transaction failed is
read again from its last commit, and nothing is handled twice."""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from shared import transactional
from shared.signing import keyring_from, signer_from
from shared.topic_admin import wait_until_visible
from shared.transactional import TransactionalWorker
from tests.helpers import eventually

pytestmark = pytest.mark.integration


@dataclass
class Seen:
    count: int = 0

    @classmethod
    def from_dict(cls, raw: dict | None) -> "Seen":
        return cls(**(raw or {}))

    def to_dict(self) -> dict:
        return {"count": self.count}


@pytest.fixture
async def copier_topics(settings):
    """An input, an output and a compacted state topic of two partitions each, gone afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = {"input": f"test.copier.in.{suffix}", "output": f"test.copier.out.{suffix}",
             "state": f"test.copier.state.{suffix}"}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await admin.create_topics([
        NewTopic(names["input"], 2, settings.replication_factor),
        NewTopic(names["output"], 2, settings.replication_factor),
        NewTopic(names["state"], 2, settings.replication_factor, topic_configs={"cleanup.policy": "compact"})])
    # A worker that joins its group before the broker lists its input is assigned nothing, and
    # hears of the topic only at its next metadata refresh, minutes later.
    await wait_until_visible(admin, list(names.values()))
    try:
        yield names
    finally:
        await admin.delete_topics(list(names.values()))
        await admin.close()


def copier_class(names: dict[str, str]):
    class Copier(TransactionalWorker[Seen]):
        """Copies each input record to the same partition of the output and counts it per key."""

        group = f"test-copier-{names['input']}"
        source = "/points/test"
        inputs = (names["input"],)
        state_topic = names["state"]
        state_class = Seen

        async def handle(self, tp, message, now):
            self.state(tp.partition, message.key.decode()).count += 1
            await self.send(names["output"], message.value, key=message.key, partition=tp.partition)
            return message.key.decode(), None

    return Copier


async def committed_output(settings, topic: str, partition: int) -> list[bytes]:
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                              isolation_level="read_committed", enable_auto_commit=False)
    await reader.start()
    try:
        tp = TopicPartition(topic, partition)
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        end = (await reader.end_offsets([tp]))[tp]
        values = []
        while await reader.position(tp) < end:
            for messages in (await reader.getmany(tp, timeout_ms=500)).values():
                values += [m.value for m in messages]
        return values
    finally:
        await reader.stop()


@contextlib.asynccontextmanager
async def working(worker_class, settings, *, ready_within: float = 60):
    """The worker running its loop and ready, with a producer to its input; both stopped afterwards."""
    bootstrap = settings.kafka_bootstrap_servers
    worker = worker_class(bootstrap, signer=signer_from(settings), keyring=keyring_from(settings))
    await worker.start()
    running = asyncio.create_task(worker.run())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        async def ready():
            return worker.ready()

        await eventually(ready, timeout=ready_within)
        yield worker, producer
    finally:
        worker.running = False
        await running
        await worker.stop()
        await producer.stop()


async def test_a_partition_a_stale_owner_fenced_is_taken_back_and_each_record_handled_once(
        settings, copier_topics, monkeypatch):
    monkeypatch.setattr(transactional, "FENCED_GRACE_SECONDS", 1.0)
    Copier = copier_class(copier_topics)
    async with working(Copier, settings) as (worker, producer):
        await producer.send_and_wait(copier_topics["input"], b"one", key=b"k", partition=0)
        await eventually(lambda: committed_output(settings, copier_topics["output"], 0), timeout=30)

        # An instance that believes it still owns partition 0 (paused through a rebalance, say)
        # starts its producer: the worker's next transaction on that partition is refused.
        stale = Copier(settings.kafka_bootstrap_servers, signer=signer_from(settings), keyring=keyring_from(settings))
        await stale.take_over({0})
        await stale.release({0})
        await producer.send_and_wait(copier_topics["input"], b"two", key=b"k", partition=0)

        # Once a later record is through, a second copy of an earlier one would show before it.
        await producer.send_and_wait(copier_topics["input"], b"three", key=b"k", partition=0)

        async def copied():
            return b"three" in await committed_output(settings, copier_topics["output"], 0)

        await eventually(copied, timeout=60)
        assert await committed_output(settings, copier_topics["output"], 0) == [b"one", b"two", b"three"]
        assert worker.state(0, "k").count == 3
        assert worker.ready()


async def test_a_state_slower_to_read_back_than_the_session_timeout_keeps_the_worker_in_its_group(
        settings, copier_topics):
    Copier = copier_class(copier_topics)
    # aiokafka's consumer heartbeats every 3 s; the broker expels it after its 10 s session passes
    # without one (found to take 10 more seconds here, so the first restore takes twice the session).
    session_timeout, heartbeat_interval = 10.0, 3.0

    class SlowToRestore(Copier):
        """As if the state were big the first time it is read back."""

        restores = 0

        async def take_over(self, partitions):
            self.restores += 1
            if self.restores == 1:
                await asyncio.sleep(2 * session_timeout)
            await super().take_over(partitions)

    async with working(SlowToRestore, settings, ready_within=120) as (worker, producer):
        generation = worker.generation
        # An expelled member learns it at its next heartbeat, then rejoins and restores again.
        await asyncio.sleep(2 * heartbeat_interval)
        assert worker.ready(), "not working a moment after it was"
        assert worker.generation == generation, "expelled from the group once its state was read back"

        await producer.send_and_wait(copier_topics["input"], b"after", key=b"k", partition=1)

        async def copied():
            return await committed_output(settings, copier_topics["output"], 1) == [b"after"]

        await eventually(copied, timeout=30)


async def test_records_that_change_nothing_are_read_past_and_their_offsets_committed_once_the_input_is_quiet(
        settings, copier_topics):
    Copier = copier_class(copier_topics)

    class SkipsEchoes(Copier):
        """An input it wrote itself (say) changes nothing and writes nothing."""

        async def handle(self, tp, message, now):
            if message.value == b"echo":
                return None, None
            return await super().handle(tp, message, now)

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    tp = TopicPartition(copier_topics["input"], 0)

    async def committed_offset():
        return (await admin.list_consumer_group_offsets(SkipsEchoes.group)).get(tp, None)

    try:
        async with working(SkipsEchoes, settings) as (worker, producer):
            for _ in range(2):
                await producer.send_and_wait(tp.topic, b"echo", key=b"k", partition=0)

            async def read_past_echoes():
                offset = await committed_offset()
                return offset is not None and offset.offset == 2

            await eventually(read_past_echoes, timeout=30)
            await producer.send_and_wait(tp.topic, b"real", key=b"k", partition=0)

            async def copied():
                return await committed_output(settings, copier_topics["output"], 0) == [b"real"]

            await eventually(copied, timeout=30)
            assert (await committed_offset()).offset == 3
            assert worker.state(0, "k").count == 1
    finally:
        await admin.close()


async def test_a_record_is_held_until_what_it_waits_for_is_read_however_long_that_takes(settings, copier_topics):
    # The redeemer's commands wait for the ledger before them, the validator's submissions for the
    # reviews: here the awaited record is committed first but cannot be read until the test allows it.
    bootstrap = settings.kafka_bootstrap_servers
    awaited = f"test.copier.awaited.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(awaited, 2, settings.replication_factor)])
    await wait_until_visible(admin, [awaited])
    handled: list[bytes] = []
    Copier = copier_class(copier_topics)

    class Waits(Copier):
        inputs = (copier_topics["input"], awaited)
        waits_for = {copier_topics["input"]: awaited}

        async def handle(self, tp, message, now):
            handled.append(message.value)
            return await super().handle(tp, message, now)

    slow = TopicPartition(awaited, 0)

    def held_back() -> float:
        return REGISTRY.get_sample_value("points_batches_deferred_total",
                                         {"group": Waits.group, "topic": copier_topics["input"]}) or 0.0

    try:
        async with working(Waits, settings) as (worker, producer):
            async def assigned():
                return slow in worker.consumer.assignment()

            await eventually(assigned, timeout=60)
            worker.consumer.pause(slow)
            await producer.send_and_wait(awaited, b"awaited", key=b"k", partition=0)
            await producer.send_and_wait(copier_topics["input"], b"waiting", key=b"k", partition=0)

            async def tried_and_held():
                return held_back() >= 3

            await eventually(tried_and_held, timeout=30)
            assert handled == []
            worker.consumer.resume(slow)

            async def both_handled():
                return len(handled) == 2

            await eventually(both_handled, timeout=30)
            assert handled == [b"awaited", b"waiting"]
    finally:
        await admin.delete_topics([awaited])
        await admin.close()


async def test_a_partition_whose_transaction_failed_is_read_again_from_its_commit_and_each_record_handled_once(
        settings, copier_topics):
    Copier = copier_class(copier_topics)
    failures = {b"flaky": 1}

    class FailsOnce(Copier):
        async def handle(self, tp, message, now):
            result = await super().handle(tp, message, now)  # state changed and output sent, then:
            if failures.get(message.value):
                failures[message.value] -= 1
                raise ConnectionError("the broker went away mid-batch")
            return result

    def aborted() -> float:
        return REGISTRY.get_sample_value("points_transactions_aborted_total", {"group": FailsOnce.group}) or 0.0

    async with working(FailsOnce, settings) as (worker, producer):
        await producer.send_and_wait(copier_topics["input"], b"before", key=b"a", partition=1)

        async def before_copied():
            return await committed_output(settings, copier_topics["output"], 1) == [b"before"]

        await eventually(before_copied, timeout=30)
        await producer.send_and_wait(copier_topics["input"], b"flaky", key=b"a", partition=1)
        await producer.send_and_wait(copier_topics["input"], b"other", key=b"b", partition=0)

        async def all_copied():
            return (len(await committed_output(settings, copier_topics["output"], 1)) >= 2
                    and await committed_output(settings, copier_topics["output"], 0) == [b"other"])

        await eventually(all_copied, timeout=60)
        assert aborted() == 1
        assert await committed_output(settings, copier_topics["output"], 1) == [b"before", b"flaky"]
        # The aborted attempt's count was read back from the state topic, not kept.
        assert worker.state(1, "a").count == 2
        assert worker.state(0, "b").count == 1
