"""Poison records are set aside with their reason, never stall a partition, and can be replayed."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid

import asyncpg
import pytest

from shared import topics
from shared.envelope import to_record
from shared.events import EventDecided, utcnow
from shared.signing import signer_from
from tests.helpers import decided_event, eventually, habit_event, new_user, produce, skip_unless_the_stack_runs

pytestmark = pytest.mark.integration


def decision(user: str, reasons=("ok",)) -> EventDecided:
    now = utcnow()
    return EventDecided(event_id=uuid.uuid4(), user_id=user, event_type="admin_award", event_time=now,
                        points_delta=5, proof_type="manual_admin", validation_status="validated", trust_score=100,
                        reasons=reasons, rule_set="t", validated_by="ops", decided_at=now)


def points(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], capture_output=True, text=True,
                          env=os.environ, timeout=120)


async def test_a_record_postgresql_cannot_store_is_set_aside_and_the_partition_moves_on(settings, db):
    user = new_user()
    poison = signer_from(settings).sign(to_record(decision(user, reasons=("bad\x00byte",)), key=user, source="/x"))
    healthy = decision(user)
    good = signer_from(settings).sign(to_record(healthy, key=user, source="/x"))
    await produce(settings, [(topics.LEDGER, r) for r in (poison, good)])

    async def applied():
        return await db.fetchval("SELECT count(*) FROM points_events WHERE id = $1", healthy.event_id)

    await eventually(applied)
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1", user) == 1

    async def listed():
        out = points("deadletters", "list", "--json", "--service", "projector")
        return [json.loads(line) for line in out.stdout.splitlines() if json.loads(line)["key"] == user]

    letter = (await eventually(listed, timeout=30))[0]
    assert letter["source_topic"] == topics.LEDGER
    # PostgreSQL's own words on why: text cannot hold a NUL (the batch's rows reach it as JSON).
    assert "\\u0000 cannot be converted to text" in letter["reason"]


async def test_a_subject_too_long_to_store_is_refused_at_the_gateway(gateway, token):
    headers = token("u" * 3000)

    submitted = await gateway.post("/v1/events", json=habit_event(), headers=headers)
    balance = await gateway.get("/v1/me/points", headers=headers)

    for response in (submitted, balance):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "255" in response.json()["detail"]


async def test_an_unstorable_record_on_the_log_is_set_aside_as_an_attack_and_the_partition_moves_on(
        settings, db, gateway, token):
    """Signed with our key, so it passes the signature check, and still too large for PostgreSQL's index."""
    huge = secrets.token_urlsafe(2250)  # random, so PostgreSQL cannot compress it under the index limit
    poison = decision(huge)
    healthy_user = new_user()
    healthy = decision(healthy_user)
    signer = signer_from(settings)
    records = [signer.sign(to_record(event, key=user, source="/x")) for event, user in ((poison, huge),
                                                                                     (healthy, healthy_user))]
    # Both on one partition, the poison first: the healthy record must not wait behind it.
    await produce(settings, [(topics.LEDGER, r) for r in records], partition=0)

    async def applied():
        return await db.fetchval("SELECT count(*) FROM points_events WHERE id = $1", healthy.event_id)

    assert await eventually(applied, timeout=30) == 1
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE id = $1", poison.event_id) == 0

    async def listed():
        out = points("deadletters", "list", "--json", "--service", "projector")
        return [json.loads(line) for line in out.stdout.splitlines() if json.loads(line)["key"] == huge]

    letter = (await eventually(listed, timeout=30))[0]
    assert letter["source_topic"] == topics.LEDGER and "54000" in letter["reason"]

    admin = token("security@example.com", "admin")

    async def raised():
        found = (await gateway.get("/v1/admin/fraud-insights", params={"severity": "high"}, headers=admin)).json()
        return [i for i in found if i["insight_type"] == "unstorable_record"
                and i["evidence"]["source"] == f"{topics.LEDGER}/0/{letter['source_offset']}"]

    insight = (await eventually(raised, timeout=30))[0]
    assert insight["user_id"].startswith("unstorable:") and insight["evidence"]["key_length"] == len(huge)

    # And the ordinary traffic behind it flows as before.
    headers = token(new_user())
    accepted = await gateway.post("/v1/events", json=habit_event(), headers=headers)
    assert (await decided_event(gateway, headers, accepted.json()["event_id"]))["validation_status"] == "validated"


async def test_a_database_outage_is_waited_out_without_skipping_a_record(stack, settings, db):
    skip_unless_the_stack_runs(stack, "postgres")
    projector = stack.service("projector").process()
    before = projector.pid()
    user = new_user()
    during = decision(user)
    record = signer_from(settings).sign(to_record(during, key=user, source="/x"))
    await asyncio.to_thread(stack.postgres.stop)
    try:
        await produce(settings, [(topics.LEDGER, record)])
        await asyncio.sleep(3)  # the projector reads it and fails to write it, more than once
    finally:
        await asyncio.to_thread(stack.postgres.start, lambda _: None)
        await asyncio.to_thread(stack.postgres.wait_ready)

    async def applied():
        try:
            return await db.fetchval("SELECT count(*) FROM points_events WHERE id = $1", during.event_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None  # the test's own pool reconnects too

    assert await eventually(applied, timeout=60) == 1
    assert projector.pid() == before  # waited it out, did not die and restart
    assert await db.fetchval("SELECT available_points FROM user_points_cache WHERE user_id = $1", user) == 5
    await asyncio.to_thread(stack.heal, lambda _: None)


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
    await produce(settings, [(topics.LEDGER, record)])

    async def set_aside():
        out = points("deadletters", "list", "--json", "--reason", "unknown signing key")
        return [json.loads(line) for line in out.stdout.splitlines() if json.loads(line)["key"] == user]

    assert await eventually(set_aside, timeout=30)
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE id = $1", healthy.event_id) == 0

    # The fix: the projector learns the new key. Then the dead letter is replayed and applied.
    projector = next(s for s in stack.services if s.name == "projector").process()
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
        # Restoring what this test changed: the stack's own configuration does not trust that key, so
        # a rebuild from the log (rightly) leaves the row out; the live tables lose it too, as they
        # would have had the key never been rotated in.
        await db.execute("DELETE FROM points_events WHERE id = $1", healthy.event_id)
        await db.execute("DELETE FROM user_points_cache WHERE user_id = $1", user)
