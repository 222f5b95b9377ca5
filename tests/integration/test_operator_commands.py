"""`points admin ...`: what the guide's operator SQL did to the read models, done through the log,
naming the operator, and safe to run twice."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from tests.helpers import (coupon_template, decided_event, eventually, habit_event, held_event, new_user,
                           one_coupon_customer, spaced)

pytestmark = pytest.mark.integration
OPERATOR = "ops@example.com"


def points_admin(*args: str) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "deploy.cli", "admin", *args, "--operator", OPERATOR],
                            capture_output=True, text=True, env=os.environ, timeout=120)
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}


async def test_an_award_from_the_command_line_lands_in_the_ledger_naming_the_operator_once(gateway, token, db):
    user = new_user()
    headers = token(user)

    first = await asyncio.to_thread(points_admin, "award", "--user", user, "--points", "250", "--reason", "support #812")
    again = await asyncio.to_thread(points_admin, "award", "--user", user, "--points", "250", "--reason", "support #812")

    assert first[0] == 0 and again[0] == 0
    assert first[1]["event_id"] == again[1]["event_id"] and first[1]["validated_by"] == OPERATOR

    async def credited():
        return (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 250

    await eventually(credited)
    row = await db.fetchrow("SELECT event_type, validated_by, validation_status FROM points_events WHERE id = $1",
                            uuid.UUID(first[1]["event_id"]))
    assert dict(row) == {"event_type": "admin_award", "validated_by": OPERATOR, "validation_status": "validated"}


async def test_a_clawback_from_the_command_line_takes_back_a_credited_event_once_naming_the_operator(
        gateway, token, db):
    user = new_user()
    headers = token(user)
    award = await asyncio.to_thread(points_admin, "award", "--user", user, "--points", "300", "--reason", "promo")
    fraud = award[1]["event_id"]

    async def credited():
        return (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 300

    await eventually(credited)
    first = await asyncio.to_thread(points_admin, "clawback", "--user", user, "--event", fraud,
                                    "--reason", "promo abuse found later")
    again = await asyncio.to_thread(points_admin, "clawback", "--user", user, "--event", fraud,
                                    "--reason", "promo abuse found later")

    assert first[0] == 0 and first[1] == again[1]  # typed twice, taken once
    assert (first[1]["recovered_points"], first[1]["reversed_event_ids"]) == (300, [fraud])
    assert first[1]["validated_by"] == OPERATOR

    async def taken_back():
        return (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 0

    await eventually(taken_back)
    row = await db.fetchrow("SELECT event_type, points_delta, validated_by FROM points_events WHERE id = $1",
                            uuid.UUID(first[1]["event_id"]))
    assert dict(row) == {"event_type": "clawback", "points_delta": -300, "validated_by": OPERATOR}
    neither = await asyncio.to_thread(points_admin, "clawback", "--user", user, "--reason", "no measure")
    assert neither[0] == 1 and neither[1]["http_status"] == 422


async def test_an_award_the_api_would_refuse_is_refused_here_too(gateway):
    status, body = await asyncio.to_thread(points_admin, "award", "--user", new_user(), "--points", "0",
                                           "--reason", "nothing")
    assert status == 1 and body["http_status"] == 422


async def test_a_coupon_revoked_from_the_command_line_is_refused_at_the_till_and_refunded_once(gateway, token):
    user, headers, template_id = await one_coupon_customer(gateway, token, 300, "Operator revoke")
    issued = await gateway.post("/v1/redemptions", json={"template_id": template_id},
                                headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    coupon_id = issued.json()["coupon_id"]

    async def projected():  # the command finds the coupon in the read model, written a moment after the 201
        return any(c["coupon_id"] == coupon_id for c in (await gateway.get("/v1/me/coupons", headers=headers)).json())

    await eventually(projected)
    first = await asyncio.to_thread(points_admin, "revoke", coupon_id, "--refund")
    again = await asyncio.to_thread(points_admin, "revoke", coupon_id, "--refund")

    assert first[0] == 0 and first[1]["status"] == "revoked" and first[1]["refunded_points"] == 300
    assert again[0] == 0 and again[1]["already"] is True
    till = await gateway.post("/v1/coupons/redeem", json={"code": issued.json()["code"]},
                              headers=token("till-3", "merchant"))
    assert till.status_code == 409 and till.json()["type"].endswith("/coupon-revoked")

    async def refunded_once():
        return (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 300

    await eventually(refunded_once)
    await asyncio.sleep(1)  # a second refund, had there been one, would have landed by now
    assert (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 300


async def test_a_template_disabled_from_the_command_line_is_no_longer_offered(gateway, token):
    admin = token("support@example.com", "admin")
    template_id = await coupon_template(gateway, admin, 50, "Operator disable")
    headers = token(new_user())

    status, body = await asyncio.to_thread(points_admin, "template", "disable", template_id)

    assert status == 0 and body["is_active"] is False
    offered = (await gateway.get("/v1/coupon-templates", headers=headers)).json()
    assert template_id not in {t["template_id"] for t in offered}
    refused = await gateway.post("/v1/redemptions", json={"template_id": template_id},
                                 headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    assert refused.status_code == 409 and refused.json()["type"].endswith("/template-inactive")


async def test_hold_pending_from_the_command_line_sends_undecided_events_to_review_naming_the_operator(
        stack, gateway, token, db):
    validator = stack.service("validator").process()
    os.kill(validator.pid(), signal.SIGKILL)
    headers = token(new_user())
    try:
        accepted = await gateway.post("/v1/events", json=habit_event(), headers=headers)
        event_id = accepted.json()["event_id"]

        async def pending():
            return await db.fetchval("SELECT validation_status = 'pending' FROM points_events WHERE id = $1::uuid",
                                     event_id)

        await eventually(pending)
        status, body = await asyncio.to_thread(points_admin, "hold-pending", "--yes")
        assert status == 0 and body["held"] >= 1
    finally:
        await asyncio.to_thread(stack.up, echo=lambda _: None)

    decided = await decided_event(gateway, headers, event_id, timeout=60)
    assert decided["validation_status"] == "pending_review"
    assert await db.fetchval("SELECT validated_by FROM points_events WHERE id = $1::uuid", event_id) == OPERATOR


async def test_a_bulk_verdict_from_the_command_line_settles_every_held_event_of_a_user_naming_the_operator(
        gateway, token, db):
    user = new_user()
    held = [await held_event(gateway, token(user), at) for at in spaced(2)]

    status, body = await asyncio.to_thread(points_admin, "verdict", "reject", "--user", user,
                                           "--note", "farm confirmed")
    assert status == 0 and sorted(o["event_id"] for o in body["outcomes"]) == sorted(held)
    assert {o["outcome"] for o in body["outcomes"]} == {"accepted"}

    async def rejected():
        rows = await db.fetch("SELECT validation_status, validated_by, review_note FROM points_events "
                              "WHERE id = ANY($1::uuid[])", held)
        return rows if all(r["validation_status"] == "rejected" for r in rows) else None

    rows = await eventually(rejected)
    assert {(r["validated_by"], r["review_note"]) for r in rows} == {(OPERATOR, "farm confirmed")}
    again = await asyncio.to_thread(points_admin, "verdict", "reject", "--user", user)
    assert again[0] == 0 and again[1]["outcomes"] == []  # nothing held any more: nothing sent
