"""Anti-replay nonces and the hourly rate limit, shared by every gateway process."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from services.ingest.submission import accept
from shared.signing import signer_from
from tests.helpers import decided_event, eventually, habit_event, new_user, spaced

pytestmark = pytest.mark.integration

NONCE_CLEANUP_QUERY = "SELECT COUNT(*), MAX(expires_at) FROM used_nonces WHERE expires_at < now();"


async def test_a_retry_with_the_same_nonce_and_body_returns_the_first_event(gateway, token, db):
    user = new_user()
    headers, event = token(user), habit_event()
    first = await gateway.post("/v1/events", json=event, headers=headers)
    again = await gateway.post("/v1/events", json=event, headers=headers)

    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == {"event_id": first.json()["event_id"], "status": "pending", "duplicate": True}
    await decided_event(gateway, headers, first.json()["event_id"])
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1", user) == 1


async def test_the_same_nonce_with_another_body_is_refused(gateway, token):
    headers, event = token(new_user()), habit_event()
    assert (await gateway.post("/v1/events", json=event, headers=headers)).status_code == 202
    reused = await gateway.post("/v1/events", json={**event, "payload": {"habit_id": "h2"}}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/nonce-reused")


async def test_nonces_are_per_user(gateway, token):
    event = habit_event()
    assert (await gateway.post("/v1/events", json=event, headers=token(new_user()))).status_code == 202
    assert (await gateway.post("/v1/events", json=event, headers=token(new_user()))).status_code == 202


async def test_concurrent_copies_at_two_gateways_take_effect_once(gateway, second_gateway, token, db):
    user = new_user()
    headers, event = token(user), habit_event()
    responses = await asyncio.gather(*[
        (gateway if i % 2 else second_gateway).post("/v1/events", json=event, headers=headers) for i in range(12)
    ])

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 11 + [202]
    assert len({r.json()["event_id"] for r in responses}) == 1
    decided = await decided_event(gateway, headers, responses[0].json()["event_id"])
    assert decided["validation_status"] == "validated"
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1", user) == 1
    balance = (await gateway.get("/v1/me/points", headers=headers)).json()
    assert balance["available_points"] == decided["points_delta"]


async def test_the_101st_event_in_an_hour_is_rate_limited_across_gateways(gateway, second_gateway, token, settings):
    headers = token(new_user())
    limit = settings.rate_limit_per_hour
    times = spaced(limit + 1, seconds=20)
    last = None
    for i, at in enumerate(times[:limit]):
        last = await (gateway if i % 2 else second_gateway).post("/v1/events", json=habit_event(at=at),
                                                                  headers=headers)
        assert last.status_code == 202, (i, last.text)
    assert last.headers["RateLimit"].startswith('"hourly";r=0;')
    assert last.headers["RateLimit-Policy"] == f'"hourly";q={limit};w=3600'

    refused = await gateway.post("/v1/events", json=habit_event(at=times[-1]), headers=headers)
    assert refused.status_code == 429
    assert refused.json()["type"].endswith("/rate-limited")
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.headers["RateLimit"].startswith('"hourly";r=0;')
    assert (await second_gateway.post("/v1/events", json=habit_event(), headers=headers)).status_code == 429


async def test_accepted_events_report_the_remaining_quota(gateway, token, settings):
    headers = token(new_user())
    first = await gateway.post("/v1/events", json=habit_event(), headers=headers)
    assert first.headers["RateLimit"].startswith(f'"hourly";r={settings.rate_limit_per_hour - 1};')


async def test_a_claim_whose_publish_never_happened_is_published_by_the_retry(gateway, token, db):
    """The first request crashed after claiming its nonce: the retry publishes that very event."""
    user = new_user()
    body = habit_event()
    lost = accept(user_id=user, event_type=body["event_type"],
                  event_time=datetime.fromisoformat(body["event_time"].replace("Z", "+00:00")),
                  nonce=body["nonce"], payload=body["payload"], device_id=None, proof_type="none",
                  now=datetime.now(timezone.utc) - timedelta(seconds=30))
    await db.execute(
        "INSERT INTO used_nonces (user_id, nonce, event_id, body_hash, created_at, expires_at, record) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        user, lost.nonce, lost.event_id, lost.body_hash, lost.received_at, lost.received_at + timedelta(hours=25),
        lost.model_dump(mode="json"))

    retry = await gateway.post("/v1/events", json=body, headers=token(user))

    assert retry.status_code == 200
    assert retry.json()["event_id"] == str(lost.event_id)
    decided = await decided_event(gateway, token(user), str(lost.event_id))
    assert decided["validation_status"] == "validated"
    assert await db.fetchval("SELECT published_at IS NOT NULL FROM used_nonces WHERE user_id = $1", user)


async def test_expired_nonces_are_cleaned_up(db):
    user = new_user()
    past = datetime.now(timezone.utc) - timedelta(hours=30)
    await db.execute(
        "INSERT INTO used_nonces (user_id, nonce, event_id, body_hash, created_at, expires_at, record) "
        "VALUES ($1, 'expired-nonce', gen_random_uuid(), 'h', $2, $3, '{}'::jsonb)",
        user, past, past + timedelta(hours=25))

    async def cleaned():
        return (await db.fetchrow(NONCE_CLEANUP_QUERY))["count"] == 0

    await eventually(cleaned, timeout=15)
    assert await db.fetchval("SELECT count(*) FROM used_nonces WHERE user_id = $1", user) == 0


async def test_a_submission_delivered_twice_to_kafka_is_decided_once(gateway, token, db, settings):
    """A publish whose ack was lost is published again by the retry: the validator must not re-decide it."""
    from services.ingest.publisher import KafkaPublisher
    from shared import topics

    user = new_user()
    body = habit_event()
    event = accept(user_id=user, event_type=body["event_type"],
                   event_time=datetime.fromisoformat(body["event_time"].replace("Z", "+00:00")),
                   nonce=body["nonce"], payload=body["payload"], device_id=None, proof_type="none",
                   now=datetime.now(timezone.utc))
    publisher = KafkaPublisher(settings.kafka_bootstrap_servers, signer_from(settings))
    await publisher.start()
    try:
        await publisher.publish(topics.SUBMITTED, event, key=user)
        await decided_event(gateway, token(user), str(event.event_id))
        await publisher.publish(topics.SUBMITTED, event, key=user)
        marker = await gateway.post("/v1/events", json=habit_event(at=spaced(1)[0] + timedelta(seconds=90)),
                                    headers=token(user))
        # The marker is decided after the redelivery (same partition), so the redelivery was seen by now.
        await decided_event(gateway, token(user), marker.json()["event_id"])
    finally:
        await publisher.stop()

    decided = await decided_event(gateway, token(user), str(event.event_id))
    assert decided["validation_status"] == "validated"
    assert (await gateway.get("/v1/me/points", headers=token(user))).json()["available_points"] == 20


def _submission(user: str, nonce: str, habit: str = "h1"):
    return accept(user_id=user, event_type="habit_completed", event_time=datetime.now(timezone.utc),
                  nonce=nonce, payload={"habit_id": habit}, device_id=None, proof_type="none",
                  now=datetime.now(timezone.utc))


def _statements() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("ingest_claims_per_statement_count") or 0.0


async def test_claims_arriving_together_share_a_statement_and_each_keeps_its_own_outcome(db):
    from services.ingest import claims

    quota_user, retrying_user = new_user(), new_user()
    first = _submission(retrying_user, "n-1")
    together = ([_submission(quota_user, f"q-{i}") for i in range(8)]
                + [first, first, _submission(retrying_user, "n-1", habit="h2")])
    gateway_claims = claims.Claims(db, limit=5, ttl=timedelta(hours=25), most_in_flight=1)
    before = _statements()

    outcomes = await asyncio.gather(*[gateway_claims.claim(event) for event in together])

    assert _statements() - before < len(together)
    assert [type(o).__name__ for o in outcomes[:8]] == ["Claimed"] * 5 + ["RateLimited"] * 3
    assert [o.quota.used for o in outcomes[:5]] == [0, 1, 2, 3, 4]
    assert isinstance(outcomes[8], claims.Claimed)
    assert isinstance(outcomes[9], claims.Duplicate) and outcomes[9].event.event_id == first.event_id
    assert isinstance(outcomes[10], claims.NonceReused)
    assert await db.fetchval("SELECT count(*) FROM used_nonces WHERE user_id = $1", quota_user) == 5


async def test_a_submission_postgresql_refuses_does_not_fail_the_others_in_its_statement(db):
    """A key too long for the claims' index fails its statement; its neighbours are claimed alone."""
    import secrets

    import asyncpg

    from services.ingest import claims

    users = [new_user() for _ in range(4)]
    refused = _submission(secrets.token_hex(10_000), "n-1")
    gateway_claims = claims.Claims(db, limit=5, ttl=timedelta(hours=25), most_in_flight=1)

    outcomes = await asyncio.gather(*[gateway_claims.claim(_submission(user, "n-1")) for user in users[:2]],
                                    gateway_claims.claim(refused),
                                    *[gateway_claims.claim(_submission(user, "n-1")) for user in users[2:]],
                                    return_exceptions=True)

    assert isinstance(outcomes[2], asyncpg.PostgresError)
    assert all(isinstance(o, claims.Claimed) for i, o in enumerate(outcomes) if i != 2), outcomes
    assert await db.fetchval("SELECT count(*) FROM used_nonces WHERE user_id = ANY($1)", users) == 4
