"""Spending points on coupons, merchants accepting codes, revocations and awards, on the real stack."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.coupon_codes import coupon_keys_from
from tests.helpers import discrepancies, eventually, fund, new_user

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
def admin(token):
    return token("support@example.com", "admin")


@pytest.fixture(scope="module")
def merchant(token):
    return token(f"merchant-{uuid.uuid4().hex[:6]}", "merchant")


@pytest.fixture(scope="module")
async def template(gateway, admin):
    response = await gateway.post("/v1/admin/coupon-templates",
                                  json={"name": "$5 Starbucks", "partner": "Starbucks", "points_cost": 500,
                                        "valid_days": 30}, headers=admin)
    assert response.status_code == 201
    return response.json()


async def funded_user(gateway, admin, token, points: int):
    user = new_user()
    await fund(gateway, admin, token(user), user, points)
    return user, token(user)


async def redeem(gateway, headers, template_id, key=None):
    return await gateway.post("/v1/redemptions", json={"template_id": template_id},
                              headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex})


async def test_active_templates_are_listed(gateway, token, template):
    listed = (await gateway.get("/v1/coupon-templates", headers=token(new_user()))).json()
    assert template["template_id"] in {t["template_id"] for t in listed}
    assert all(t["is_active"] for t in listed)


async def test_a_redemption_spends_the_points_and_returns_a_code_shown_nowhere_else(gateway, admin, token, template,
                                                                                  db, settings):
    user, headers = await funded_user(gateway, admin, token, 500)
    response = await redeem(gateway, headers, template["template_id"])

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["points_cost"] == 500 and body["available_points"] == 0
    async def projected():
        return await db.fetchrow("SELECT * FROM coupons WHERE coupon_id = $1", uuid.UUID(body["coupon_id"]))

    row = await eventually(projected)
    assert row["status"] == "issued" and row["plaintext_code"] is None and row["user_id"] == user
    assert row["code_hash"] == coupon_keys_from(settings).hash_for(body["code"])
    mine = (await gateway.get("/v1/me/coupons", headers=headers)).json()
    assert [c["coupon_id"] for c in mine] == [body["coupon_id"]]
    assert "code" not in mine[0]

    async def debited():
        return (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 0

    await eventually(debited)
    assert await discrepancies(db, user) == []


async def test_ten_concurrent_redemptions_of_a_balance_that_pays_for_one(gateway, admin, token, template, db):
    user, headers = await funded_user(gateway, admin, token, 500)
    responses = await asyncio.gather(*[redeem(gateway, headers, template["template_id"]) for _ in range(10)])

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 9, [r.text for r in responses]
    refused = [r.json() for r in responses if r.status_code == 409]
    assert all(p["type"].endswith("/insufficient-points") for p in refused)

    async def settled():
        balance = (await gateway.get("/v1/me/points", headers=headers)).json()
        coupons = await db.fetchval("SELECT count(*) FROM coupons WHERE user_id = $1", user)
        return balance["available_points"] == 0 and coupons == 1

    await eventually(settled)
    assert await discrepancies(db, user) == []
    debits = await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1 AND "
                               "event_type = 'coupon_redemption'", user)
    assert debits == 1


async def test_a_retry_with_the_same_key_gets_the_same_code_and_spends_once(gateway, admin, token, template):
    user, headers = await funded_user(gateway, admin, token, 1000)
    key = uuid.uuid4().hex
    first = await redeem(gateway, headers, template["template_id"], key)
    again = await redeem(gateway, headers, template["template_id"], key)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.json()["available_points"] == 500


async def test_the_same_key_for_another_request_is_refused(gateway, admin, token, template):
    _, headers = await funded_user(gateway, admin, token, 500)
    key = uuid.uuid4().hex
    assert (await redeem(gateway, headers, template["template_id"], key)).status_code == 201
    other = await gateway.post("/v1/admin/coupon-templates",
                               json={"name": "Other", "partner": "P", "points_cost": 100}, headers=admin)
    reused = await redeem(gateway, headers, other.json()["template_id"], key)
    assert reused.status_code == 422 and reused.json()["type"].endswith("/idempotency-key-reused")


async def test_a_redemption_without_an_idempotency_key_is_a_bad_request(gateway, token, template):
    response = await gateway.post("/v1/redemptions", json={"template_id": template["template_id"]},
                                  headers=token(new_user()))
    assert response.status_code == 400
    assert response.json()["type"].endswith("/idempotency-key-required")


async def test_an_inactive_template_cannot_be_redeemed(gateway, admin, token):
    created = (await gateway.post("/v1/admin/coupon-templates",
                                  json={"name": "Gone", "partner": "P", "points_cost": 10}, headers=admin)).json()
    changed = await gateway.put(f"/v1/admin/coupon-templates/{created['template_id']}", json={"is_active": False},
                                headers=admin)
    assert changed.status_code == 200 and changed.json()["is_active"] is False
    _, headers = await funded_user(gateway, admin, token, 10)
    response = await redeem(gateway, headers, created["template_id"])
    assert response.status_code == 409 and response.json()["type"].endswith("/template-inactive")


async def a_coupon(gateway, admin, token, template) -> dict:
    """A coupon of a new user's, findable by merchants: the redemption's answer and the user's id."""
    user, headers = await funded_user(gateway, admin, token, 500)
    body = (await redeem(gateway, headers, template["template_id"])).json()

    async def findable():  # a merchant finds codes in the read model
        return (await gateway.get("/v1/me/coupons", headers=headers)).json()

    await eventually(findable)
    return {**body, "user_id": user}


async def test_a_merchant_accepts_a_code_once(gateway, admin, token, template, merchant):
    coupon = await a_coupon(gateway, admin, token, template)
    typed = coupon["code"].lower().replace("-", " ")
    used = await gateway.post("/v1/coupons/redeem", json={"code": typed}, headers=merchant)
    assert used.status_code == 200, used.text
    assert used.json() == {"coupon_id": coupon["coupon_id"], "template_id": template["template_id"],
                           "status": "redeemed"}
    again = await gateway.post("/v1/coupons/redeem", json={"code": coupon["code"]}, headers=merchant)
    assert again.status_code == 409 and again.json()["type"].endswith("/coupon-already-redeemed")


async def test_five_concurrent_uses_of_one_code_succeed_once(gateway, admin, token, template, merchant):
    coupon = await a_coupon(gateway, admin, token, template)
    responses = await asyncio.gather(*[gateway.post("/v1/coupons/redeem", json={"code": coupon["code"]},
                                                    headers=merchant) for _ in range(5)])
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409]


async def test_a_revoked_coupon_is_refused_and_its_points_refunded(gateway, admin, token, template, merchant, db):
    coupon = await a_coupon(gateway, admin, token, template)
    revoked = await gateway.post(f"/v1/admin/coupons/{coupon['coupon_id']}/revoke", json={"refund": True},
                                 headers=admin)
    assert revoked.status_code == 200
    assert revoked.json() == {"coupon_id": coupon["coupon_id"], "status": "revoked", "refunded_points": 500}

    refused = await gateway.post("/v1/coupons/redeem", json={"code": coupon["code"]}, headers=merchant)
    assert refused.status_code == 409 and refused.json()["type"].endswith("/coupon-revoked")

    async def refunded():
        return await db.fetchrow("SELECT * FROM points_events WHERE event_type = 'coupon_refund' "
                                 "AND related_entity_id = $1", coupon["coupon_id"])

    row = await eventually(refunded)
    assert row["points_delta"] == 500 and row["validated_by"] == "support@example.com"
    assert await discrepancies(db, coupon["user_id"]) == []


async def test_unknown_codes_are_not_found_and_guessing_is_rate_limited(gateway, token, settings):
    guesser = token(f"merchant-{uuid.uuid4().hex[:6]}", "merchant")
    statuses = [(await gateway.post("/v1/coupons/redeem", json={"code": "ABCD-EFGH-JKMN-PQRS"},
                                    headers=guesser)).status_code
                for _ in range(settings.merchant_failed_attempts_per_hour + 1)]
    assert statuses[:-1] == [404] * settings.merchant_failed_attempts_per_hour
    assert statuses[-1] == 429


async def test_only_merchants_redeem_codes_and_only_admins_revoke(gateway, admin, token, template, merchant):
    coupon = await a_coupon(gateway, admin, token, template)
    user = token(new_user())
    revoke = f"/v1/admin/coupons/{coupon['coupon_id']}/revoke"

    assert (await gateway.post("/v1/coupons/redeem", json={"code": coupon["code"]}, headers=user)).status_code == 403
    assert (await gateway.post(revoke, json={"refund": True}, headers=user)).status_code == 403
    assert (await gateway.post(revoke, json={"refund": True}, headers=merchant)).status_code == 403
    # None of the refused attempts touched the coupon: the merchant can still take it once.
    used = await gateway.post("/v1/coupons/redeem", json={"code": coupon["code"]}, headers=merchant)
    assert used.status_code == 200 and used.json()["status"] == "redeemed"


async def test_an_admin_award_is_a_ledger_record_naming_the_admin_and_is_idempotent(gateway, admin, token, db):
    user = new_user()
    key = uuid.uuid4().hex
    body = {"user_id": user, "points": 250, "reason": "goodwill"}
    first = await gateway.post("/v1/admin/awards", json=body, headers={**admin, "Idempotency-Key": key})
    again = await gateway.post("/v1/admin/awards", json=body, headers={**admin, "Idempotency-Key": key})
    assert first.status_code == again.status_code == 201 and first.json() == again.json()

    async def recorded():
        return await db.fetch("SELECT * FROM points_events WHERE user_id = $1", user)

    # A later award to the same user: once it is recorded, a second copy of the first would be too.
    marker = await gateway.post("/v1/admin/awards", json={**body, "points": 1, "reason": "marker"},
                                headers={**admin, "Idempotency-Key": uuid.uuid4().hex})
    assert marker.status_code == 201

    async def both():
        rows = await recorded()
        return rows if 1 in {r["points_delta"] for r in rows} else None

    rows = [r for r in await eventually(both) if r["points_delta"] == 250]
    assert len(rows) == 1
    assert (rows[0]["event_type"], rows[0]["validated_by"], rows[0]["points_delta"]) == \
           ("admin_award", "support@example.com", 250)

    async def balance():
        return (await gateway.get("/v1/me/points", headers=token(user))).json()["available_points"] == 251

    await eventually(balance)


async def test_no_plaintext_code_is_in_postgresql_kafka_or_the_logs(gateway, admin, token, template, merchant, db,
                                                                    settings):
    """Codes issued, retried, used, refused and revoked here, then searched for everywhere."""
    from aiokafka import AIOKafkaConsumer

    from shared import topics

    coupons = [await a_coupon(gateway, admin, token, template) for _ in range(3)]
    codes = [c["code"] for c in coupons]
    assert (await gateway.post("/v1/coupons/redeem", json={"code": codes[0].lower()}, headers=merchant)).status_code \
        == 200
    assert (await gateway.post("/v1/coupons/redeem", json={"code": codes[0]}, headers=merchant)).status_code == 409
    assert (await gateway.post(f"/v1/admin/coupons/{coupons[1]['coupon_id']}/revoke", json={"refund": False},
                               headers=admin)).status_code == 200

    async def projected():  # what those requests caused is in the read model, and so on the log
        statuses = [await db.fetchval("SELECT status FROM coupons WHERE coupon_id = $1", uuid.UUID(c["coupon_id"]))
                    for c in coupons[:2]]
        return statuses == ["redeemed", "revoked"]

    await eventually(projected)
    needles = {code.encode() for code in codes} | {code.replace("-", "").encode() for code in codes}

    rows_seen = 0
    for table in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
        for row in await db.fetch(f'SELECT t::text AS row FROM "{table["tablename"]}" t'):
            rows_seen += 1
            assert not any(n in row["row"].encode() for n in needles), table["tablename"]
    assert rows_seen > 0

    consumer = AIOKafkaConsumer(*topics.ALL, bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records_seen = 0
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        pending = {tp for tp, end in ends.items() if end > 0}
        while pending:
            for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                for message in messages:
                    records_seen += 1
                    blob = (message.value or b"") + b"".join(bytes(v) for _, v in message.headers)
                    assert not any(n in blob for n in needles), tp.topic
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    assert records_seen > 0

    logs = list((settings.state_dir / "logs").glob("*.log"))
    assert logs
    for log_file in logs:
        content = log_file.read_bytes()
        assert not any(n in content for n in needles), log_file.name
