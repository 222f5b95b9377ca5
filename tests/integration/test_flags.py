"""The kill switch and the canary rollout, set by an admin and followed by every gateway."""
from __future__ import annotations

import pytest

from services.ingest.flags import rollout_bucket
from tests.helpers import eventually, habit_event, new_user, recorded_before_a_marker

pytestmark = pytest.mark.integration

ALL_ON = {"points_system_enabled": True, "rollout_percent": 100}


@pytest.fixture
async def admin(gateway, second_gateway, token):
    """An admin whose flag changes are undone afterwards, at every gateway, before the next test."""
    headers = token("admin-ops@example.com", "admin")
    yield headers
    assert (await gateway.put("/v1/admin/flags", json=ALL_ON, headers=headers)).status_code == 200

    async def every_gateway_accepts():
        answers = [await g.post("/v1/events", json=habit_event(), headers=token(new_user()))
                   for g in (gateway, second_gateway)]
        return all(a.status_code == 202 for a in answers)

    await eventually(every_gateway_accepts, timeout=15)


def user_in_bucket(low: int, high: int) -> str:
    while True:
        user = new_user()
        if low <= rollout_bucket(user) < high:
            return user


async def test_the_kill_switch_stops_writes_at_every_gateway(gateway, second_gateway, token, admin):
    changed = await gateway.put("/v1/admin/flags", json={"points_system_enabled": False, "rollout_percent": 100},
                                headers=admin)
    assert changed.status_code == 200
    assert changed.json()["updated_by"] == "admin-ops@example.com"
    headers = token(new_user())

    refused = await gateway.post("/v1/events", json=habit_event(), headers=headers)
    assert refused.status_code == 503 and refused.json()["type"].endswith("/points-disabled")

    async def other_gateway_refuses():
        # A probe user: until the other gateway refreshes its flags, its probes may be accepted.
        response = await second_gateway.post("/v1/events", json=habit_event(), headers=token(new_user()))
        return response.status_code == 503

    await eventually(other_gateway_refuses, timeout=10)
    assert (await gateway.put("/v1/admin/flags", json=ALL_ON, headers=admin)).status_code == 200

    async def accepted_again():
        return (await gateway.post("/v1/events", json=habit_event(), headers=token(new_user()))).status_code == 202

    await eventually(accepted_again, timeout=10)
    assert await recorded_before_a_marker(gateway, headers) == []


async def test_users_outside_the_rollout_are_refused_and_inside_accepted(gateway, token, admin):
    await gateway.put("/v1/admin/flags", json={"points_system_enabled": True, "rollout_percent": 5}, headers=admin)
    inside, outside = token(user_in_bucket(0, 5)), token(user_in_bucket(5, 100))

    assert (await gateway.post("/v1/events", json=habit_event(), headers=inside)).status_code == 202
    refused = await gateway.post("/v1/events", json=habit_event(), headers=outside)
    assert refused.status_code == 403 and refused.json()["type"].endswith("/not-in-rollout")


async def test_flag_changes_are_stored_with_the_admin_who_made_them(gateway, db, admin):
    await gateway.put("/v1/admin/flags", json={"points_system_enabled": True, "rollout_percent": 25}, headers=admin)
    assert (await gateway.get("/v1/admin/flags", headers=admin)).json()["rollout_percent"] == 25
    last = await db.fetchrow("SELECT * FROM feature_flag_changes ORDER BY id DESC LIMIT 1")
    assert (last["rollout_percent"], last["changed_by"]) == (25, "admin-ops@example.com")


async def test_only_admins_may_change_flags(gateway, token):
    response = await gateway.put("/v1/admin/flags", json={"points_system_enabled": False, "rollout_percent": 0},
                                 headers=token(new_user()))
    assert response.status_code == 403
    assert (await gateway.get("/v1/admin/flags", headers=token(new_user(), "merchant"))).status_code == 403


async def test_an_out_of_range_rollout_is_refused(gateway, admin):
    response = await gateway.put("/v1/admin/flags", json={"points_system_enabled": True, "rollout_percent": 101},
                                 headers=admin)
    assert response.status_code == 422
