"""What an outside review found an attacker (or a careless client) could do, each shut and shown shut."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import httpx
import pytest

from deploy.launchers.process import ManagedProcess, wait_until
from shared import topics
from shared.envelope import to_record
from shared.events import EventDecided, utcnow
from shared.settings import REPO_ROOT
from shared.signing import signer_from
from tests.helpers import eventually, habit_event, held_event, new_user, one_coupon_customer, produce

pytestmark = pytest.mark.integration


def is_problem(response: httpx.Response, status: int, slug: str | None = None) -> bool:
    return (response.status_code == status and response.headers["content-type"].startswith("application/problem+json")
            and (slug is None or response.json()["type"].endswith("/" + slug)))


async def test_a_merchant_refused_at_the_till_learns_nothing_about_the_coupons_owner(gateway, token):
    user, headers, template_id = await one_coupon_customer(gateway, token, 100, "Owner privacy")
    issued = await gateway.post("/v1/redemptions", json={"template_id": template_id},
                                headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    merchant = token("till-7", "merchant")

    async def projected():  # the till looks codes up in the read model, written a moment after the 201
        coupons = (await gateway.get("/v1/me/coupons", headers=headers)).json()
        return any(c["coupon_id"] == issued.json()["coupon_id"] for c in coupons)

    await eventually(projected)
    first = await gateway.post("/v1/coupons/redeem", json={"code": issued.json()["code"]}, headers=merchant)

    again = await gateway.post("/v1/coupons/redeem", json={"code": issued.json()["code"]}, headers=merchant)

    assert first.status_code == 200 and set(first.json()) == {"coupon_id", "template_id", "status"}
    assert is_problem(again, 409, "coupon-already-redeemed")
    assert "available_points" not in again.json() and user not in again.text


async def test_guesses_sent_all_at_once_cannot_overrun_the_merchants_failed_code_limit(gateway, token, settings):
    merchant = token(f"guesser-{uuid.uuid4().hex[:8]}", "merchant")
    guesses = [f"{uuid.uuid4().hex[:16].upper()}" for _ in range(20)]

    answers = await asyncio.gather(*(gateway.post("/v1/coupons/redeem", json={"code": code}, headers=merchant)
                                     for code in guesses))

    limit = settings.merchant_failed_attempts_per_hour
    assert sorted(a.status_code for a in answers) == [404] * limit + [429] * (20 - limit)
    assert all(is_problem(a, 429, "too-many-failed-codes") for a in answers if a.status_code == 429)


async def test_a_refused_redemption_is_the_keys_answer_not_a_request_in_flight_forever(gateway, token):
    admin = token("support@example.com", "admin")
    user, headers, template_id = await one_coupon_customer(gateway, token, 100, "Withdrawn")
    assert (await gateway.put(f"/v1/admin/coupon-templates/{template_id}", json={"is_active": False},
                              headers=admin)).status_code == 200
    key = {**headers, "Idempotency-Key": uuid.uuid4().hex}

    first = await gateway.post("/v1/redemptions", json={"template_id": template_id}, headers=key)
    again = await gateway.post("/v1/redemptions", json={"template_id": template_id}, headers=key)
    other = await gateway.post("/v1/redemptions", json={"template_id": str(uuid.uuid4())}, headers=key)

    assert is_problem(first, 409, "template-inactive") and is_problem(again, 409, "template-inactive")
    # The same key with another body is a reused key, whatever that body names.
    assert is_problem(other, 422, "idempotency-key-reused")
    assert (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 100


async def test_answers_that_carry_a_coupon_code_are_never_stored_by_a_cache(gateway, token):
    user, headers, template_id = await one_coupon_customer(gateway, token, 100, "No store")
    key = {**headers, "Idempotency-Key": uuid.uuid4().hex}

    issued = await gateway.post("/v1/redemptions", json={"template_id": template_id}, headers=key)
    replayed = await gateway.post("/v1/redemptions", json={"template_id": template_id}, headers=key)
    polled = await gateway.get(f"/v1/redemptions/{issued.json()['redemption_id']}", headers=headers)

    for response in (issued, replayed, polled):
        assert response.json()["code"] == issued.json()["code"]
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("points", [True, "100", 10.0])
async def test_an_award_takes_a_whole_number_of_points_and_nothing_that_looks_like_one(gateway, token, points):
    response = await gateway.post("/v1/admin/awards", json={"user_id": new_user(), "points": points, "reason": "x"},
                                  headers={**token("support@example.com", "admin"), "Idempotency-Key": uuid.uuid4().hex})
    assert is_problem(response, 422, "validation-error")


async def test_text_kafka_cannot_carry_is_a_client_error_not_a_kafka_outage(gateway, token):
    headers = token(new_user())
    event_id = await held_event(gateway, headers)

    response = await gateway.post(f"/v1/admin/events/{event_id}/decision",
                                  content='{"decision": "approve", "note": "lone \\ud800 surrogate"}',
                                  headers={**token("support@example.com", "admin"), "content-type": "application/json"})

    assert is_problem(response, 422, "validation-error")


async def test_a_streamed_body_over_64_kib_is_refused_with_a_413_problem(settings, token):
    async def chunks():
        for _ in range(80):
            yield b"x" * 1024

    async with httpx.AsyncClient(base_url=settings.gateway_url) as client:
        response = await client.post("/v1/events", content=chunks(),
                                     headers={**token(new_user()), "content-type": "application/json"})
    assert is_problem(response, 413, "payload-too-large")


async def test_an_over_long_token_is_a_401_problem_not_a_parser_error(gateway):
    response = await gateway.get("/v1/me/points", headers={"Authorization": "Bearer " + "e" * 20000})
    assert is_problem(response, 401, "unauthorized")


async def test_attestation_challenges_are_rationed_per_user(gateway, token):
    headers = token(new_user())
    answers = [await gateway.post("/v1/attestation/challenges", headers=headers) for _ in range(12)]
    assert [a.status_code for a in answers] == [201] * 10 + [429] * 2
    assert is_problem(answers[-1], 429, "too-many-challenges")


async def test_a_balance_beyond_32_bits_is_projected_not_refused(settings, db, gateway, token):
    user = new_user()
    now = utcnow()
    credit = EventDecided(event_id=uuid.uuid4(), user_id=user, event_type="admin_award", event_time=now,
                          points_delta=3_000_000_000, proof_type="manual_admin", validation_status="validated",
                          trust_score=100, reasons=("migration",), rule_set="admin", validated_by="ops", decided_at=now)
    await produce(settings, [(topics.LEDGER, signer_from(settings).sign(to_record(credit, key=user, source="/x")))])

    async def balance():
        return (await gateway.get("/v1/me/points", headers=token(user))).json()["available_points"]

    assert await eventually(balance) == 3_000_000_000


async def test_the_validators_log_lines_keep_their_fields(stack, gateway, token):
    headers = token(new_user())
    accepted = await gateway.post("/v1/events", json=habit_event(), headers=headers)
    event_id = accepted.json()["event_id"]
    log_file = stack.settings.state_dir / "logs" / "validator.log"

    async def logged():
        for line in log_file.read_text().splitlines():
            if event_id in line:
                return json.loads(line)
        return None

    line = await eventually(logged)
    assert line["msg"] == "points.event.validated" and line["event_id"] == event_id
    assert line["validation_status"] == "validated" and line["trust_score"] >= 60


def test_a_production_gateway_shows_no_docs_or_metrics_on_its_public_port(stack, tmp_path):
    import base64

    port, ops_port = stack.settings.gateway_port + 30, stack.settings.gateway_port + 31
    env = {**os.environ, "POINTS_ENV": "prod", "POINTS_GATEWAY_PORT": str(port), "POINTS_GATEWAY_OPS_PORT": str(ops_port),
           "POINTS_JWT_SECRET": "p" * 40, "COUPON_SECRET": "c" * 40, "POINTS_COUPON_CODE_KEY": "k" * 40,
           "POINTS_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode()}
    for name in ("APP_ATTEST_VERIFY_AT",):
        env.pop(name, None)
    process = ManagedProcess("ingest-prod", stack.settings.state_dir)
    process.start([sys.executable, "-m", "services.ingest"], cwd=REPO_ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, timeout=60, what="prod gateway")
        for path in ("/docs", "/openapi.json", "/metrics"):
            assert httpx.get(f"{url}{path}").status_code == 404, path
        assert "ingest_http_requests_total" in httpx.get(f"http://127.0.0.1:{ops_port}/metrics").text
    finally:
        process.stop()


# The deployment guide's "Award Points Manually", as written.
GUIDE_MANUAL_AWARD = """INSERT INTO points_events (
  user_id, event_type, event_time, points_delta,
  proof_type, validation_status, validated_by
) VALUES (
  'someone', 'admin_award', now(), 100,
  'manual_admin', 'validated', 'mallory@example.com'
)"""


async def test_only_the_projector_writes_the_read_models_and_only_the_gateway_its_claims(settings):
    import asyncpg

    if not settings.uses_embedded_postgres:
        pytest.skip("on someone else's server the services log in as whatever DATABASE_URL says")
    gateway = await asyncpg.connect(settings.service_dsn("ingest"))
    projector = await asyncpg.connect(settings.service_dsn("projector"))
    try:
        for statement in (GUIDE_MANUAL_AWARD, "UPDATE coupons SET status = 'revoked'",
                          "UPDATE user_points_cache SET available_points = 999999",
                          "DELETE FROM fraud_insights", "UPDATE projector_offsets SET next_offset = 0"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await gateway.execute(statement)
        for statement in ("DELETE FROM used_nonces", "UPDATE feature_flags SET points_system_enabled = false",
                          "DELETE FROM points_events", "DROP TABLE coupons"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await projector.execute(statement)
        # What each needs, it has: asked of the catalogue, so the answer does not hang on whether the
        # projector has committed anything yet when this test happens to run first.
        # (has_table_privilege is true when any one of a list is held, hence one privilege a call.)
        needs = {gateway: {"points_events": ["SELECT"], "used_nonces": ["SELECT", "INSERT", "DELETE"]},
                 projector: {"projector_offsets": ["SELECT", "INSERT", "UPDATE"],
                             "user_points_cache": ["SELECT", "INSERT", "UPDATE"]}}
        for connection, tables in needs.items():
            for table, privileges in tables.items():
                for privilege in privileges:
                    assert await connection.fetchval("SELECT has_table_privilege(current_user, $1, $2)",
                                                     table, privilege), (table, privilege)
    finally:
        await gateway.close()
        await projector.close()


async def test_expired_challenges_and_old_failed_codes_are_removed_by_the_gateway(db):
    merchant, user = f"old-till-{uuid.uuid4().hex[:8]}", new_user()
    await db.execute("INSERT INTO merchant_failed_attempts (merchant, attempted_at) VALUES ($1, now() - interval '2 hours')",
                     merchant)
    await db.execute("INSERT INTO attestation_challenges (challenge, user_id, expires_at) "
                     "VALUES ($1, $2, now() - interval '1 minute')", os.urandom(32), user)

    async def removed():
        left = await db.fetchval("SELECT count(*) FROM merchant_failed_attempts WHERE merchant = $1", merchant)
        left += await db.fetchval("SELECT count(*) FROM attestation_challenges WHERE user_id = $1", user)
        return left == 0

    assert await eventually(removed, timeout=30)
