"""An app event travels through Kafka to a PostgreSQL balance, through the public HTTP API only."""
from __future__ import annotations

import pytest

from shared.catalogue import CATALOGUE
from tests.helpers import decided_event, discrepancies, eventually, habit_event, new_user, spaced

pytestmark = pytest.mark.integration


async def test_a_habit_completion_is_validated_and_credited_to_the_balance(gateway, token, db):
    user = new_user()
    headers = token(user)

    response = await gateway.post("/v1/events", json=habit_event(), headers=headers)
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "pending" and accepted["duplicate"] is False

    event = await decided_event(gateway, headers, accepted["event_id"])
    assert event["validation_status"] == "validated"
    assert event["points_delta"] == CATALOGUE["habit_completed"].points > 0
    assert event["trust_score"] >= 60

    balance = (await gateway.get("/v1/me/points", headers=headers)).json()
    assert balance == {"user_id": user, "available_points": CATALOGUE["habit_completed"].points,
                       "pending_points": 0, "lifetime_earned": CATALOGUE["habit_completed"].points,
                       "lifetime_spent": 0}
    assert await discrepancies(db, user) == []


async def test_points_sent_by_the_client_are_ignored(gateway, token):
    headers = token(new_user())
    response = await gateway.post("/v1/events", json=habit_event(points=100000, points_delta=100000),
                                  headers=headers)
    assert response.status_code == 202
    event = await decided_event(gateway, headers, response.json()["event_id"])
    assert event["points_delta"] == CATALOGUE["habit_completed"].points


async def test_history_lists_a_users_events_newest_first_across_pages(gateway, token):
    headers = token(new_user())
    ids = []
    for at in spaced(5):
        response = await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)
        ids.append(response.json()["event_id"])
    for event_id in ids:
        await decided_event(gateway, headers, event_id)

    first = (await gateway.get("/v1/me/history", params={"limit": 3}, headers=headers)).json()
    second = (await gateway.get("/v1/me/history", params={"limit": 3, "cursor": first["next_cursor"]},
                                headers=headers)).json()
    listed = [item["event_id"] for item in first["items"] + second["items"]]
    assert listed == list(reversed(ids))
    assert second["next_cursor"] is None
    assert all(item["validation_status"] == "validated" for item in first["items"] + second["items"])


async def test_events_spaced_under_a_second_are_rejected_and_raise_a_fraud_insight(gateway, token, db):
    """The guide's "Test Fraud Detection": trust below 30, rejected, and a fraud_insights row."""
    user = new_user()
    headers = token(user)
    at = spaced(1)[0]
    first = await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)
    await decided_event(gateway, headers, first.json()["event_id"])
    second = await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)

    event = await decided_event(gateway, headers, second.json()["event_id"])
    assert event["validation_status"] == "rejected"
    assert event["trust_score"] < 30
    assert event["reasons"]
    balance = (await gateway.get("/v1/me/points", headers=headers)).json()
    assert balance["available_points"] == CATALOGUE["habit_completed"].points

    async def insight():
        # The same body twice also raises duplicate_payload: rows come back in no set order.
        return await db.fetchrow("SELECT * FROM fraud_insights WHERE user_id = $1 "
                                 "AND insight_type = 'rapid_fire_events'", user)

    row = await eventually(insight)
    assert row["score"] < 30
    assert str(row["event_id"]) == second.json()["event_id"]


async def test_a_user_cannot_read_another_users_event(gateway, token):
    owner = token(new_user())
    response = await gateway.post("/v1/events", json=habit_event(), headers=owner)
    event_id = response.json()["event_id"]
    await decided_event(gateway, owner, event_id)

    other = await gateway.get(f"/v1/events/{event_id}", headers=token(new_user()))
    assert other.status_code == 404
    assert other.headers["content-type"].startswith("application/problem+json")
    assert "user_id" not in other.text
