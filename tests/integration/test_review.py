"""The manual review workflow: held events, an admin's verdict, and the guide's hold-pending rollback."""
from __future__ import annotations

import asyncio
import os
import signal

import pytest

from tests.helpers import (decided_event, discrepancies, eventually, habit_event, held_event, new_user,
                           spaced)

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
    assert await discrepancies(db, user) == []
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
    second = await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)  # rapid fire: high
    await decided_event(gateway, headers, second.json()["event_id"])
    held = await held_event(gateway, token(new_user()))  # an attestation that cannot verify: low

    def listing(severity: str, event_id: str):
        async def listed():
            found = (await gateway.get("/v1/admin/fraud-insights", params={"severity": severity},
                                       headers=admin)).json()
            return found if event_id in {i["event_id"] for i in found} else None
        return listed

    high = await eventually(listing("high", second.json()["event_id"]))
    low = await eventually(listing("low", held))

    assert {i["severity"] for i in high} == {"high"} and {i["severity"] for i in low} == {"low"}
    assert "rapid_fire_events" in {i["insight_type"] for i in high if i["event_id"] == second.json()["event_id"]}
    assert "attestation_invalid" in {i["insight_type"] for i in low if i["event_id"] == held}
    assert held not in {i["event_id"] for i in high}


async def test_hold_pending_sends_undecided_events_to_review_instead_of_the_validator(stack, gateway, token, admin,
                                                                                     db):
    validator = next(s for s in stack.services if s.name == "validator").process()
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
        # Narrowed to this user, so no other test's undecided events are held with it.
        held = await gateway.post("/v1/admin/hold-pending", params={"user_id": user}, headers=admin)
        assert held.status_code == 200 and held.json()["held"] == 1
    finally:
        await asyncio.to_thread(stack.up, echo=lambda _: None)  # restarts just the validator

    decided = await decided_event(gateway, headers, event_id, timeout=60)
    assert decided["validation_status"] == "pending_review"
    assert "held_by_admin" in decided["reasons"]
    assert (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 0


async def test_the_queue_pages_oldest_first_with_a_next_link_that_keeps_the_filters(gateway, token, admin):
    user = new_user()
    held = [await held_event(gateway, token(user), at=at) for at in spaced(3, seconds=90)]

    first = await gateway.get("/v1/admin/review-queue", params={"user_id": user, "limit": 2}, headers=admin)
    link = first.headers["link"]
    assert link.endswith('>; rel="next"') and f"user_id={user}" in link and "limit=2" in link
    second = await gateway.get(link[1:link.index(">")], headers=admin)

    assert [e["event_id"] for e in first.json()] == held[:2]
    assert [e["event_id"] for e in second.json()] == held[2:]
    assert "link" not in second.headers  # the last page says so by having no next
    assert (await gateway.get("/v1/admin/review-queue", params={"after": "not-a-cursor"},
                              headers=admin)).status_code == 400


async def test_the_queue_narrows_to_one_reason(gateway, token, admin):
    user = new_user()
    event_id = await held_event(gateway, token(user))

    matching = await gateway.get("/v1/admin/review-queue", params={"user_id": user, "reason": "attestation_invalid"},
                                 headers=admin)
    other = await gateway.get("/v1/admin/review-queue", params={"user_id": user, "reason": "velocity_hourly"},
                              headers=admin)

    assert [e["event_id"] for e in matching.json()] == [event_id]
    assert other.json() == []


async def test_one_verdict_for_every_held_event_of_a_user_credits_each_once(gateway, token, admin, db):
    user = new_user()
    headers = token(user)
    held = [await held_event(gateway, headers, at=at) for at in spaced(2, seconds=90)]

    verdict = await gateway.post("/v1/admin/review-queue/verdicts", headers=admin,
                                 json={"decision": "approve", "note": "same family tablet", "user_id": user})

    assert verdict.status_code == 200
    assert {(o["event_id"], o["outcome"]) for o in verdict.json()["outcomes"]} == {(e, "accepted") for e in held}
    for event_id in held:
        decided = await eventually(lambda e=event_id: _status_is(db, e, "validated"))
        assert decided["validated_by"] == "reviewer@example.com"

    again = await gateway.post("/v1/admin/review-queue/verdicts", headers=admin,
                               json={"decision": "reject", "note": "second thoughts", "event_ids": held})
    assert [o["outcome"] for o in again.json()["outcomes"]] == ["not-in-review", "not-in-review"]
    balance = (await gateway.get("/v1/me/points", headers=headers)).json()
    assert balance["available_points"] == 20  # two habit events of 10, each credited once


async def test_a_bulk_verdict_says_which_events_it_could_not_find_and_needs_one_selection(gateway, admin):
    unknown = "00000000-0000-4000-8000-000000000000"

    result = await gateway.post("/v1/admin/review-queue/verdicts", headers=admin,
                                json={"decision": "reject", "event_ids": [unknown]})
    both = await gateway.post("/v1/admin/review-queue/verdicts", headers=admin,
                              json={"decision": "reject", "event_ids": [unknown], "user_id": "u"})

    assert result.json()["outcomes"] == [{"event_id": unknown, "outcome": "not-found", "validation_status": None}]
    assert both.status_code == 422


async def _status_is(db, event_id: str, status: str):
    row = await db.fetchrow("SELECT validation_status, validated_by FROM points_events WHERE id = $1::uuid", event_id)
    return dict(row) if row is not None and row["validation_status"] == status else None


async def test_the_queue_narrows_to_an_event_type_and_to_events_held_long_enough(gateway, token, admin):
    user = new_user()
    event_id = await held_event(gateway, token(user))

    async def listed(**params) -> list[str]:
        found = await gateway.get("/v1/admin/review-queue", params={"user_id": user, **params}, headers=admin)
        assert found.status_code == 200, found.text
        return [e["event_id"] for e in found.json()]

    assert await listed(event_type="habit_completed") == [event_id]
    assert await listed(event_type="streak_milestone") == []
    assert await listed(held_minutes=0) == [event_id]
    assert await listed(held_minutes=60) == []  # held a moment ago, not an hour
    groups = (await gateway.get("/v1/admin/review-queue/users", params={"user_id": user}, headers=admin)).json()
    assert [(g["user_id"], g["held"]) for g in groups] == [(user, 1)]
    assert (await gateway.get("/v1/admin/review-queue", params={"held_minutes": -1}, headers=admin)).status_code == 422
