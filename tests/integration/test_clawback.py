"""Fraud found after the fact (the guide's partial rollback): an admin takes credited points back."""
from __future__ import annotations

import uuid

import pytest

from tests.helpers import decided_event, eventually, fund, habit_event, new_user

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def desk(token):
    return token("fraud-desk@example.com", "admin")


async def balance_becomes(gateway, headers, points: int) -> dict:
    async def check():
        balance = (await gateway.get("/v1/me/points", headers=headers)).json()
        return balance if balance["available_points"] == points else None

    return await eventually(check)


async def test_a_clawback_is_a_ledger_record_naming_the_admin_and_a_retry_takes_nothing_more(gateway, token, desk, db):
    user = new_user()
    headers = token(user)
    await fund(gateway, desk, headers, user, 100)
    keyed = {**desk, "Idempotency-Key": uuid.uuid4().hex}

    first = await gateway.post(f"/v1/admin/users/{user}/clawback", json={"points": 30, "reason": "double award"},
                               headers=keyed)
    again = await gateway.post(f"/v1/admin/users/{user}/clawback", json={"points": 30, "reason": "double award"},
                               headers=keyed)

    assert first.status_code == 201 and again.status_code == 201 and again.json() == first.json()
    assert (first.json()["recovered_points"], first.json()["unrecovered_points"]) == (30, 0)
    await balance_becomes(gateway, headers, 70)

    async def recorded():
        return await db.fetchrow("SELECT event_type, points_delta, validated_by FROM points_events WHERE id = $1::uuid",
                                 first.json()["event_id"])

    assert dict(await eventually(recorded)) == {"event_type": "clawback", "points_delta": -30,
                                                "validated_by": "fraud-desk@example.com"}


async def test_a_clawback_beyond_the_balance_stops_at_zero_and_records_what_it_could_not_recover(
        gateway, token, desk):
    user = new_user()
    headers = token(user)
    await fund(gateway, desk, headers, user, 50)

    taken = await gateway.post(f"/v1/admin/users/{user}/clawback", json={"points": 80, "reason": "chargeback"},
                               headers={**desk, "Idempotency-Key": uuid.uuid4().hex})

    assert taken.status_code == 201
    assert (taken.json()["recovered_points"], taken.json()["unrecovered_points"]) == (50, 30)
    await balance_becomes(gateway, headers, 0)


async def test_clawing_back_a_validated_event_reverses_its_credit_once(gateway, token, desk):
    user = new_user()
    headers = token(user)
    accepted = await gateway.post("/v1/events", json=habit_event(), headers=headers)
    event = await decided_event(gateway, headers, accepted.json()["event_id"])
    assert event["validation_status"] == "validated"
    await balance_becomes(gateway, headers, event["points_delta"])

    body = {"event_ids": [event["event_id"]], "reason": "scripted taps"}
    first = await gateway.post(f"/v1/admin/users/{user}/clawback", json=body,
                               headers={**desk, "Idempotency-Key": uuid.uuid4().hex})
    second = await gateway.post(f"/v1/admin/users/{user}/clawback", json=body,
                                headers={**desk, "Idempotency-Key": uuid.uuid4().hex})

    assert first.json()["reversed_event_ids"] == [event["event_id"]]
    assert first.json()["recovered_points"] == event["points_delta"]
    assert second.json()["requested_points"] == 0  # that credit was taken back already
    await balance_becomes(gateway, headers, 0)


@pytest.mark.parametrize("body", [{"reason": "x"}, {"points": 5, "event_ids": [str(uuid.uuid4())], "reason": "x"},
                                  {"points": True, "reason": "x"}, {"points": 5, "reason": ""}])
async def test_a_clawback_names_an_amount_or_events_and_a_reason(gateway, desk, body):
    response = await gateway.post(f"/v1/admin/users/{new_user()}/clawback", json=body,
                                  headers={**desk, "Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")


async def test_a_clawback_needs_an_idempotency_key(gateway, desk):
    response = await gateway.post(f"/v1/admin/users/{new_user()}/clawback", json={"points": 5, "reason": "x"},
                                  headers=desk)
    assert response.status_code == 400
