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
from shared.signing import keyring_from, signer_from
from tests.helpers import eventually, new_user

pytestmark = pytest.mark.integration


def decision(user: str, points: int, status: str = "validated") -> EventDecided:
    now = datetime.now(timezone.utc)
    return EventDecided(event_id=uuid.uuid4(), user_id=user, event_type="habit_completed", event_time=now,
                        points_delta=points, proof_type="none", validation_status=status, trust_score=90,
                        rule_set="test", validated_by="test", decided_at=now)


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
            record = signer_from(settings).sign(to_record(event, key=event.user_id, source="/tests"))
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
    await run_until(Projector(settings.kafka_bootstrap_servers, db, keyring_from(settings), group, (private_topic,)), db, group, 7)
    assert await balance(db, user) == 70

    await publish(settings, private_topic, [decision(user, 5) for _ in range(3)])
    await run_until(Projector(settings.kafka_bootstrap_servers, db, keyring_from(settings), group, (private_topic,)), db, group, 10)

    assert await balance(db, user) == 85
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1", user) == 10


async def test_replaying_the_log_from_offset_zero_gives_the_same_rows(settings, schema, private_topic):
    db = schema
    user, group = new_user(), f"test-projector-{uuid.uuid4().hex[:8]}"
    await publish(settings, private_topic,
                  [decision(user, 10), decision(user, 20, "rejected"), decision(user, 30), decision(user, 1)])
    await run_until(Projector(settings.kafka_bootstrap_servers, db, keyring_from(settings), group, (private_topic,)), db, group, 4)
    query = "SELECT * FROM points_events WHERE user_id = $1 ORDER BY id"
    before = [dict(r) for r in await db.fetch(query, user)]
    cache_before = await balance(db, user)

    await db.execute("DELETE FROM projector_offsets WHERE consumer_group = $1", group)
    await run_until(Projector(settings.kafka_bootstrap_servers, db, keyring_from(settings), group, (private_topic,)), db, group, 4)

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


async def test_one_batch_holding_an_event_twice_and_its_held_decision_and_verdict_ends_at_the_verdict(schema):
    # A batch is written in one statement per kind of row, and a statement may not write a row twice:
    # the submission read twice, the hold and the admin's verdict all land in one batch here.
    db = schema
    user, group = new_user(), f"test-projector-{uuid.uuid4().hex[:8]}"
    held = decision(user, 25, status="pending_review")
    verdict = held.model_copy(update={"validation_status": "validated", "validated_by": "admin@example.com",
                                      "review_note": "receipt checked"})
    submitted = EventSubmitted(event_id=held.event_id, user_id=user, event_type=held.event_type,
                               event_time=held.event_time, nonce=uuid.uuid4().hex, points=25,
                               received_at=held.event_time, body_hash="h")
    other = decision(user, 10)
    rows = [project(submitted, Position("submitted", 0, 1)), project(submitted, Position("submitted", 0, 2)),
            project(held, Position("ledger", 0, 4)), project(other, Position("ledger", 0, 5)),
            project(verdict, Position("ledger", 0, 6))]

    await store.apply_batch(db, group, rows, {("submitted", 0): 3, ("ledger", 0): 7})

    row = await db.fetchrow("SELECT validation_status, validated_by, review_note, source_offset FROM points_events "
                            "WHERE id = $1", held.event_id)
    assert dict(row) == {"validation_status": "validated", "validated_by": "admin@example.com",
                         "review_note": "receipt checked", "source_offset": 6}
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1", user) == 2
    assert await balance(db, user) == 35


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_redeemers_balance_and_the_read_models_agree_on_the_same_log(schema, seed):
    """The balance is defined twice: by the redeemer's account (services/redeemer/account.py) and by
    the SQL that refreshes the cache from the ledger rows. One random log of credits, re-decisions,
    redemptions, refunds, clawbacks and records delivered twice goes through both; they must end
    equal, user by user."""
    import random
    from datetime import timedelta

    from services.redeemer.account import Account
    from shared.commands import ClawBack, RedeemCoupon, RevokeCoupon
    from shared.coupon_codes import CouponKeys
    from shared.events import CouponIssued

    rng, keys = random.Random(seed), CouponKeys(b"k" * 32, ("k1", b"s" * 32))
    users = [new_user() for _ in range(3)]
    accounts = {user: Account() for user in users}
    credits: dict[str, list[EventDecided]] = {user: [] for user in users}
    coupons: dict[str, list[uuid.UUID]] = {user: [] for user in users}
    log: list[EventDecided] = []
    now = datetime.now(timezone.utc)
    for step in range(120):
        user, now = rng.choice(users), now + timedelta(minutes=rng.randint(1, 90))
        account, roll = accounts[user], rng.random()
        held = [c for c in credits[user] if c.validation_status == "pending_review"]
        if roll < 0.05 and log:  # a record delivered again later (a replayed dead letter, say): counted once
            record = {r.event_id: r for r in log}[rng.choice(log).event_id]
            accounts[record.user_id].apply_ledger(record)
            log.append(record)
            continue
        if roll < 0.35:
            record = decision(user, rng.randint(1, 400), rng.choice(["validated", "validated", "pending_review"]))
            credits[user].append(record)
        elif roll < 0.5 and held:  # a review's verdict replaces the held decision of the same event
            earlier = rng.choice(held)
            record = earlier.model_copy(update={"validation_status": rng.choice(["validated", "rejected"])})
            credits[user][credits[user].index(earlier)] = record
        else:
            command_id, common = uuid.uuid4(), {"user_id": user, "issued_at": now}
            if roll < 0.8:
                command = RedeemCoupon(command_id=command_id, template_id=uuid.uuid4(),
                                       points_cost=rng.randint(1, 300), valid_days=30, **common)
            elif roll < 0.9 and coupons[user]:
                command = RevokeCoupon(command_id=command_id, coupon_id=rng.choice(coupons[user]), admin="a",
                                       refund=rng.random() < 0.7, **common)
            else:
                command = ClawBack(command_id=command_id, admin="a", reason="test", points=rng.randint(1, 200),
                                   **common)
            produced, _ = account.handle(command, keys, now)
            coupons[user] += [e.coupon_id for e in produced if isinstance(e, CouponIssued)]
            log += [e for e in produced if isinstance(e, EventDecided)]
            continue
        account.apply_ledger(record)
        log.append(record)

    group = f"test-balances-{seed}"
    for offset, record in enumerate(log):  # the ledger as the projector reads it, one record at a time
        await store.apply_batch(schema, group, [project(record, Position("ledger", 0, offset))],
                                {("ledger", 0): offset + 1})

    assert any(account.balance for account in accounts.values())
    for user in users:
        assert await balance(schema, user) == accounts[user].balance, user
