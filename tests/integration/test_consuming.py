"""Batching reads (shared/consuming.py) on a real broker: a record whose sender waits on the answer
ends the wait for company at once."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.consuming import fill
from shared.topic_admin import wait_until_visible

pytestmark = pytest.mark.integration

# Far longer than the test may take: a fill that waited it out would fail the test by its timeout.
AGES_MS = 600_000


@pytest.fixture
async def two_topics(settings):
    suffix = uuid.uuid4().hex[:8]
    names = [f"test.fill.credits.{suffix}", f"test.fill.commands.{suffix}"]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(name, 1, settings.replication_factor) for name in names])
    await wait_until_visible(admin, names)
    try:
        yield names
    finally:
        await admin.delete_topics(names)
        await admin.close()


async def test_a_batch_lingering_for_company_goes_as_soon_as_a_record_someone_waits_on_arrives(settings, two_topics):
    credits, commands = two_topics
    bootstrap = settings.kafka_bootstrap_servers
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        consumer.assign([TopicPartition(credits, 0), TopicPartition(commands, 0)])
        await producer.send_and_wait(credits, b"credit")
        batches = {}
        while not batches:
            batches = await consumer.getmany(timeout_ms=1000)

        filling = asyncio.create_task(fill(consumer, batches, max_records=500, linger_ms=AGES_MS,
                                           urgent=frozenset({commands}), urgent_linger_ms=0))
        await asyncio.sleep(0.5)
        assert not filling.done(), "a batch of credits alone went without waiting for company"
        await producer.send_and_wait(commands, b"redeem")
        filled = await asyncio.wait_for(filling, timeout=30)
        assert [m.value for m in filled[TopicPartition(credits, 0)]] == [b"credit"]
        assert [m.value for m in filled[TopicPartition(commands, 0)]] == [b"redeem"]
    finally:
        await producer.stop()
        await consumer.stop()
