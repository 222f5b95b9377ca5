"""The manual review workflow: held events, an admin's verdict, and the guide's hold-pending rollback."""
from __future__ import annotations

import asyncio
import os
import signal

import pytest

from shared.guide_queries import BALANCE_DISCREPANCIES
from tests.helpers import decided_event, eventually, habit_event, held_event, new_user, spaced

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def admin(token):
    return token("reviewer@example.com", "admin")


async def test_held_events_wait_in_the_review_queue_oldest_first(gateway, token, admin):
    user = new_user()
    headers = token(user)
    first, second = spaced(2)
    ids = [await held_event(gateway, headers, first), await held_event(gateway, headers, second)]
    # Other tests leave held events of their own in the shared database, so look at this user's only.
    queue = (await gateway.get("/v1/admin/review-queue", params={"user_id": user}, headers=admin)).json()
    assert [item["event_id"] for item in queue] == ids


async def test_approving_a_held_event_credits_the_points_and_names_the_admin(gateway, token, admin, db):
    user = new_user()
    headers = token(user)
    event_id = await held_event(gateway, headers)
    verdict = await gateway.post(f"/v1/admin/events/{event_id}/decision",
                                 json={"decision": "approve", "note": "checked the device"}, headers=admin)
    assert verdict.status_code == 200
    assert verdict.json() == {"event_id": event_id, "decision": "approve", "validated_by": "reviewer@example.com"}

    async def approved():
        row = await db.fetchrow("SELECT * FROM points_events WHERE id = $1::uuid", event_id)
        return row if row["validation_status"] == "validated" else None

    row = await eventually(approved)
    assert row["validated_by"] == "reviewer@example.com" and row["review_note"] == "checked the device"
    balance = (await gateway.get("/v1/me/points", headers=headers)).json()
    assert balance["available_points"] == row["points_delta"] > 0
    assert await db.fetch(BALANCE_DISCREPANCIES) == []
    history = (await gateway.get(f"/v1/admin/users/{user}/history", headers=admin)).json()
    assert history[0]["validated_by"] == "reviewer@example.com"


async def test_rejecting_a_held_event_credits_nothing(gateway, token, admin, db):
    headers = token(new_user())
    event_id = await held_event(gateway, headers)
    await gateway.post(f"/v1/admin/events/{event_id}/decision", json={"decision": "reject"}, headers=admin)

    async def rejected():
        return (await gateway.get(f"/v1/events/{event_id}", headers=headers)).json()["validation_status"] == "rejected"

    await eventually(rejected)
    assert (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 0


async def test_only_held_events_take_a_verdict(gateway, token, admin):
    headers = token(new_user())
    response = await gateway.post("/v1/events", json=habit_event(), headers=headers)
    event_id = (await decided_event(gateway, headers, response.json()["event_id"]))["event_id"]
    refused = await gateway.post(f"/v1/admin/events/{event_id}/decision", json={"decision": "approve"}, headers=admin)
    assert refused.status_code == 409


async def test_fraud_insights_can_be_filtered_by_severity(gateway, token, admin):
    headers = token(new_user())
    at = spaced(1)[0]
    await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)
    second = await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)
    await decided_event(gateway, headers, second.json()["event_id"])

    async def listed():
        found = (await gateway.get("/v1/admin/fraud-insights", params={"severity": "high"}, headers=admin)).json()
        return [i for i in found if i["event_id"] == second.json()["event_id"]]

    insights = await eventually(listed)
    assert "rapid_fire_events" in {i["insight_type"] for i in insights}
    assert all(i["severity"] == "high" for i in insights)
    low = (await gateway.get("/v1/admin/fraud-insights", params={"severity": "low"}, headers=admin)).json()
    assert all(i["severity"] == "low" for i in low)


async def test_hold_pending_sends_undecided_events_to_review_instead_of_the_validator(stack, gateway, token, admin,
                                                                                     db):
    validator = next(s for s in stack.services if s.name == "validator").process(stack.settings)
    os.kill(validator.pid(), signal.SIGKILL)
    user = new_user()
    headers = token(user)
    try:
        accepted = await gateway.post("/v1/events", json=habit_event(), headers=headers)
        event_id = accepted.json()["event_id"]

        async def pending():
            row = await db.fetchrow("SELECT validation_status FROM points_events WHERE id = $1::uuid", event_id)
            return row is not None and row["validation_status"] == "pending"

        await eventually(pending)
        held = await gateway.post("/v1/admin/hold-pending", headers=admin)
        assert held.status_code == 200 and held.json()["held"] >= 1
    finally:
        await asyncio.to_thread(stack.up, echo=lambda _: None)  # restarts just the validator

    decided = await decided_event(gateway, headers, event_id, timeout=60)
    assert decided["validation_status"] == "pending_review"
    assert "held_by_admin" in decided["reasons"]
    assert (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 0
