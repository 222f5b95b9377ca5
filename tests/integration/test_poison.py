"""Poison records are set aside with their reason, never stall a partition, and can be replayed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from shared import topics
from shared.envelope import to_record
from shared.events import EventDecided, utcnow
from tests.helpers import eventually, new_user

pytestmark = pytest.mark.integration


def decision(user: str, reasons=("ok",)) -> EventDecided:
    now = utcnow()
    return EventDecided(event_id=uuid.uuid4(), user_id=user, event_type="admin_award", event_time=now,
                        points_delta=5, proof_type="manual_admin", validation_status="validated", trust_score=100,
                        reasons=reasons, rule_set="t", validated_by="ops", decided_at=now)


async def produce(settings, records) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for topic, key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def points(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], capture_output=True, text=True,
                          env=os.environ, timeout=120)


async def test_a_record_postgresql_cannot_store_is_set_aside_and_the_partition_moves_on(settings, db):
    user = new_user()
    poison = settings.signer().sign(to_record(decision(user, reasons=("bad\x00byte",)), key=user, source="/x"))
    healthy = decision(user)
    good = settings.signer().sign(to_record(healthy, key=user, source="/x"))
    await produce(settings, [(topics.LEDGER, r.key, r.value, r.headers) for r in (poison, good)])

    async def applied():
        return await db.fetchval("SELECT count(*) FROM points_events WHERE id = $1", healthy.event_id)

    await eventually(applied)
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1", user) == 1

    async def listed():
        out = points("deadletters", "list", "--json", "--service", "projector")
        return [json.loads(line) for line in out.stdout.splitlines() if json.loads(line)["key"] == user]

    letter = (await eventually(listed, timeout=30))[0]
    assert letter["source_topic"] == topics.LEDGER
    assert "0x00" in letter["reason"]


async def test_a_dead_letter_replayed_after_the_fix_is_applied(stack, settings, db):
    """A record signed by a key the projector does not trust yet; trusting it, then replaying, applies it."""
    import asyncio

    from deploy.launchers.process import ManagedProcess
    from shared.signing import Keyring, Signer
    from shared.settings import REPO_ROOT

    user, healthy = new_user(), None
    healthy = decision(user)
    new_key = Signer.from_seed("rotating-in", bytes(range(32)))
    record = new_key.sign(to_record(healthy, key=user, source="/x"))
    await produce(settings, [(topics.LEDGER, record.key, record.value, record.headers)])

    async def set_aside():
        out = points("deadletters", "list", "--json", "--reason", "unknown signing key")
        return [json.loads(line) for line in out.stdout.splitlines() if json.loads(line)["key"] == user]

    assert await eventually(set_aside, timeout=30)
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE id = $1", healthy.event_id) == 0

    # The fix: the projector learns the new key. Then the dead letter is replayed and applied.
    projector = next(s for s in stack.services if s.name == "projector").process(settings)
    projector.stop()
    trusting = ManagedProcess("projector-trusting", settings.state_dir)
    extra = json.dumps(Keyring({"rotating-in": new_key.public_bytes()}).jwks())
    trusting.start([sys.executable, "-m", "services.projector"], cwd=REPO_ROOT,
                   env={**os.environ, "POINTS_SIGNING_PREVIOUS_KEYS": extra})
    try:
        replayed = points("deadletters", "replay", "--reason", "unknown signing key", "--yes")
        assert replayed.returncode == 0 and "replayed" in replayed.stderr

        async def applied():
            return await db.fetchval("SELECT count(*) FROM points_events WHERE id = $1", healthy.event_id)

        assert await eventually(applied, timeout=60) == 1
    finally:
        trusting.stop()
        await asyncio.to_thread(stack.up, echo=lambda _: None)
        # The stack's own configuration does not trust that key: a rebuild would (rightly) leave the
        # row out, so the row this test made is taken out of the live tables too.
        await db.execute("DELETE FROM points_events WHERE id = $1", healthy.event_id)
        await db.execute("DELETE FROM user_points_cache WHERE user_id = $1", user)
