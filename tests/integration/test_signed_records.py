"""Every record the gateway publishes is signed; a record our keys did not sign is never trusted."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from shared import topics
from shared.envelope import to_record
from shared.signing import Keyring, Signer
from tests.helpers import decided_event, eventually, habit_event, new_user, produce
from services.ingest.submission import accept
from shared.events import utcnow

pytestmark = pytest.mark.integration


async def read_topic(settings, topic: str, predicate, timeout: float = 30):
    """The first record of `topic` (from the beginning) for which `predicate` holds."""
    # A group of its own with no committed offsets reads the topic from the beginning.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                group_id=f"test-reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    if predicate(message):
                        return message
        raise AssertionError(f"no matching record on {topic}")
    finally:
        await consumer.stop()


async def test_a_downstream_consumer_verifies_records_with_the_published_keys(gateway, token, settings):
    user = new_user()
    accepted = await gateway.post("/v1/events", json=habit_event(), headers=token(user))
    keyring = Keyring.from_jwks((await gateway.get("/.well-known/points-signing-keys")).json())

    message = await read_topic(settings, topics.SUBMITTED, lambda m: m.key == user.encode())

    assert keyring.verify(message.key, message.value, message.headers) == settings.signing_key_id
    assert accepted.json()["event_id"] in message.value.decode()


async def forge(settings, user: str, signer: Signer | None) -> str:
    event = accept(user_id=user, event_type="habit_completed", event_time=utcnow(), nonce=uuid.uuid4().hex,
                   payload={"habit_id": "h1"}, device_id=None, proof_type="none", now=utcnow())
    record = to_record(event, key=user, source="/points/ingest")
    if signer is not None:
        record = signer.sign(record)
    await produce(settings, [(topics.SUBMITTED, record)])
    return str(event.event_id)


@pytest.mark.parametrize("signer", [None, Signer.from_seed("dev-1", bytes(32))], ids=["unsigned", "wrong-key"])
async def test_a_forged_submission_is_dead_lettered_and_raises_a_fraud_insight(settings, db, gateway, token, signer):
    user = new_user()
    event_id = await forge(settings, user, signer)

    async def insight():
        return await db.fetchrow("SELECT * FROM fraud_insights WHERE user_id = $1", user)

    row = await eventually(insight, timeout=30)
    assert (row["insight_type"], row["severity"]) == ("bad_signature", "critical")
    # Both services that read submissions refuse it, each setting it aside for an operator.
    for service in (b"validator", b"projector"):
        letter = await read_topic(settings, topics.DEAD_LETTER, lambda m, s=service: m.key == user.encode()
                                  and dict(m.headers)["points-dlq-service"] == s)
        assert b"sign" in dict(letter.headers)["points-dlq-reason"], service

    # A genuine event of the same user goes through; the forged one never reached the ledger.
    genuine = await gateway.post("/v1/events", json=habit_event(), headers=token(user))
    await decided_event(gateway, token(user), genuine.json()["event_id"])
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE id = $1", uuid.UUID(event_id)) == 0
