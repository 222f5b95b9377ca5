"""The projector writes rows and its consumed offsets in one transaction, so a crash or a replay
never double-applies or skips. Runs the real projector against the real broker and database."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import datetime, timezone

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.projector import store
from services.projector.consumer import Projector
from services.projector.projection import Position, project
from shared.envelope import to_record
from shared.events import EventDecided, EventSubmitted
from shared.db import create_pool
from tests.helpers import eventually, new_user

pytestmark = pytest.mark.integration


def decision(user: str, points: int, status: str = "validated") -> EventDecided:
    now = datetime.now(timezone.utc)
    return EventDecided(event_id=uuid.uuid4(), user_id=user, event_type="habit_completed", event_time=now,
                        points_delta=points, proof_type="none", validation_status=status, trust_score=90,
                        rule_set="test", validated_by="test", decided_at=now)


@pytest.fixture
async def schema(settings):
    """A fresh schema of this test's own, so the live read models never see its rows."""
    from services.projector.rebuild import create_schema, drop_schema, new_schema_name

    name = new_schema_name()
    await create_schema(settings.dsn, name)
    pool = await create_pool(settings.dsn, schema=name, min_size=1, max_size=3)
    yield pool
    await pool.close()
    await drop_schema(settings.dsn, name)


@pytest.fixture
async def private_topic(settings):
    """A ledger-shaped topic of this test's own, so its offsets start at zero."""
    name = f"test.ledger.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(name, 3, 1)])
    yield name
    await admin.delete_topics([name])
    await admin.close()


async def publish(settings, topic: str, events: list[EventDecided]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            record = settings.signer().sign(to_record(event, key=event.user_id, source="/tests"))
            await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()


async def run_until(projector: Projector, db: asyncpg.Pool, group: str, total: int) -> None:
    await projector.start()
    task = asyncio.create_task(projector.run())

    async def caught_up():
        return await db.fetchval(
            "SELECT COALESCE(SUM(next_offset), 0) FROM projector_offsets WHERE consumer_group = $1", group) == total

    try:
        await eventually(caught_up, timeout=60)
    finally:
        projector.running = False
        await task
        await projector.stop()


async def balance(db, user):
    return await db.fetchval("SELECT available_points FROM user_points_cache WHERE user_id = $1", user)


async def test_a_restarted_projector_resumes_from_its_stored_offsets_without_double_counting(
        settings, schema, private_topic):
    db = schema
    user, group = new_user(), f"test-projector-{uuid.uuid4().hex[:8]}"
    await publish(settings, private_topic, [decision(user, 10) for _ in range(7)])
    await run_until(Projector(settings.kafka_bootstrap_servers, db, settings.keyring(), group, (private_topic,)), db, group, 7)
    assert await balance(db, user) == 70

    await publish(settings, private_topic, [decision(user, 5) for _ in range(3)])
    await run_until(Projector(settings.kafka_bootstrap_servers, db, settings.keyring(), group, (private_topic,)), db, group, 10)

    assert await balance(db, user) == 85
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1", user) == 10


async def test_replaying_the_log_from_offset_zero_gives_the_same_rows(settings, schema, private_topic):
    db = schema
    user, group = new_user(), f"test-projector-{uuid.uuid4().hex[:8]}"
    await publish(settings, private_topic,
                  [decision(user, 10), decision(user, 20, "rejected"), decision(user, 30), decision(user, 1)])
    await run_until(Projector(settings.kafka_bootstrap_servers, db, settings.keyring(), group, (private_topic,)), db, group, 4)
    query = "SELECT * FROM points_events WHERE user_id = $1 ORDER BY id"
    before = [dict(r) for r in await db.fetch(query, user)]
    cache_before = await balance(db, user)

    await db.execute("DELETE FROM projector_offsets WHERE consumer_group = $1", group)
    await run_until(Projector(settings.kafka_bootstrap_servers, db, settings.keyring(), group, (private_topic,)), db, group, 4)

    assert [dict(r) for r in await db.fetch(query, user)] == before
    assert await balance(db, user) == cache_before == 41


async def test_a_batch_that_fails_in_the_database_leaves_neither_rows_nor_offsets(schema):
    db = schema
    user, group = new_user(), f"test-projector-{uuid.uuid4().hex[:8]}"
    good = project(decision(user, 10), Position("t", 0, 0))
    # A balance can never go negative: the cache's CHECK makes this batch fail in PostgreSQL.
    overdraft = replace(project(decision(user, -50), Position("t", 0, 1)), event_type="coupon_redemption")

    with pytest.raises(asyncpg.CheckViolationError):
        await store.apply_batch(db, group, [good, overdraft], {("t", 0): 2})

    assert await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1", user) == 0
    assert await db.fetchval("SELECT count(*) FROM projector_offsets WHERE consumer_group = $1", group) == 0


async def test_a_batch_from_an_instance_that_lost_its_partition_cannot_overwrite_what_the_new_owner_wrote(schema):
    """Two projectors both believe they own partition 0: the new owner wrote the event's later
    decision (a review's rejection, offset 5); the old one wakes up with the earlier one (offset 1)."""
    db = schema
    user, group = new_user(), f"test-projector-{uuid.uuid4().hex[:8]}"
    validated = decision(user, 10)
    rejected = validated.model_copy(update={"validation_status": "rejected"})
    await store.apply_batch(db, group, [project(rejected, Position("t", 0, 5))], {("t", 0): 6})

    with pytest.raises(store.StaleBatch) as stale:
        await store.apply_batch(db, group, [project(validated, Position("t", 0, 1))], {("t", 0): 2})

    assert stale.value.stored == {("t", 0): 6}
    assert await db.fetchval("SELECT validation_status FROM points_events WHERE id = $1",
                             validated.event_id) == "rejected"
    assert await db.fetchval("SELECT next_offset FROM projector_offsets WHERE consumer_group = $1", group) == 6


@pytest.mark.parametrize("order", ["submission first", "decision first"])
async def test_a_submission_never_overrides_its_decision_whichever_topic_is_read_first(schema, order):
    db = schema
    user, group = new_user(), f"test-projector-{uuid.uuid4().hex[:8]}"
    decided = decision(user, 10)
    submitted = EventSubmitted(event_id=decided.event_id, user_id=user, event_type=decided.event_type,
                               event_time=decided.event_time, nonce=uuid.uuid4().hex, points=10,
                               received_at=decided.event_time, body_hash="h")
    batches = [(project(submitted, Position("submitted", 0, 3)), {("submitted", 0): 4}),
               (project(decided, Position("ledger", 0, 7)), {("ledger", 0): 8})]
    if order == "decision first":
        batches.reverse()

    for row, offsets in batches:
        await store.apply_batch(db, group, [row], offsets)

    row = await db.fetchrow("SELECT validation_status, trust_score, source_topic FROM points_events WHERE id = $1",
                            decided.event_id)
    assert (row["validation_status"], row["trust_score"], row["source_topic"]) == ("validated", 90, "ledger")
