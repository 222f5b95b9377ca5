"""The kill switch and the canary rollout, set by an admin and followed by every gateway."""
from __future__ import annotations

import uuid

import pytest

from services.ingest.flags import rollout_bucket
from tests.helpers import eventually, habit_event, new_user, one_coupon_customer, recorded_before_a_marker

pytestmark = pytest.mark.integration

ALL_ON = {"points_system_enabled": True, "rollout_percent": 100, "redemptions_enabled": True}


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


def alertmanager_says(status: str, alertname: str, action: str, fingerprint: str) -> dict:
    """A notification as Alertmanager's webhook sends it (version 4)."""
    return {"version": "4", "status": status, "receiver": "points-gateway", "groupKey": "{}:{}",
            "commonLabels": {"alertname": alertname}, "externalURL": "http://127.0.0.1:9093",
            "alerts": [{"status": status, "labels": {"alertname": alertname, "severity": "critical",
                                                     "action": action},
                        "annotations": {"summary": "test"}, "startsAt": "2026-11-27T10:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": fingerprint}]}


async def test_alerts_that_act_switch_the_system_off_once_naming_the_alert_and_an_admin_switches_it_back(
        gateway, token, admin, settings, db):
    secret = {"Authorization": f"Bearer {settings.alert_webhook_secret.get_secret_value()}"}
    rollback = alertmanager_says("firing", "PointsCacheDiscrepancy", "page_on_call+auto_rollback", "fp-rollback")

    assert (await gateway.post("/v1/ops/alerts", json=rollback)).status_code == 401
    assert (await gateway.post("/v1/ops/alerts", json=rollback, headers=admin)).status_code == 401
    first = await gateway.post("/v1/ops/alerts", json=rollback, headers=secret)
    again = await gateway.post("/v1/ops/alerts", json=rollback, headers=secret)
    notified = await gateway.post("/v1/ops/alerts", headers=secret,
                                  json=alertmanager_says("firing", "FraudInsightSpike", "notify_security_team", "fp-n"))

    assert [a["did"] for a in first.json()["actions"]] == ["kill-switch-off"]
    assert [a["did"] for a in again.json()["actions"]] == ["already-off"]  # Alertmanager repeats itself
    assert [a["did"] for a in notified.json()["actions"]] == ["notified"]
    flags = (await gateway.get("/v1/admin/flags", headers=admin)).json()
    assert flags["points_system_enabled"] is False
    assert flags["updated_by"] == "alert:PointsCacheDiscrepancy:fp-rollback"
    refused = await gateway.post("/v1/events", json=habit_event(), headers=token(new_user()))
    assert refused.status_code == 503 and refused.json()["type"].endswith("/points-disabled")
    changes = await db.fetch("SELECT changed_by FROM feature_flag_changes WHERE changed_by LIKE 'alert:%fp-rollback'")
    assert len(changes) == 1

    # An admin switches it back on; the alert resolving switches nothing back by itself.
    restored = await gateway.put("/v1/admin/flags", json=ALL_ON, headers=admin)
    assert restored.json()["updated_by"] == "admin-ops@example.com"
    resolved = await gateway.post("/v1/ops/alerts", json=alertmanager_says(
        "resolved", "PointsCacheDiscrepancy", "page_on_call+auto_rollback", "fp-rollback"), headers=secret)
    assert [a["did"] for a in resolved.json()["actions"]] == ["resolved"]
    assert (await gateway.get("/v1/admin/flags", headers=admin)).json()["points_system_enabled"] is True


async def test_an_alert_that_stops_redemptions_leaves_events_and_coupons_at_the_till_working(
        gateway, token, admin, settings):
    secret = {"Authorization": f"Bearer {settings.alert_webhook_secret.get_secret_value()}"}
    user, headers, template_id = await one_coupon_customer(gateway, token, 100, "Stopped by an alert")
    stop = await gateway.post("/v1/ops/alerts", headers=secret, json=alertmanager_says(
        "firing", "DuplicateCouponDetected", "page_on_call+disable_redemptions", "fp-dup"))
    assert [a["did"] for a in stop.json()["actions"]] == ["redemptions-off"]

    refused = await gateway.post("/v1/redemptions", json={"template_id": template_id},
                                 headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    accepted = await gateway.post("/v1/events", json=habit_event(), headers=headers)

    assert refused.status_code == 503 and refused.json()["type"].endswith("/redemptions-disabled")
    assert accepted.status_code == 202
    flags = (await gateway.get("/v1/admin/flags", headers=admin)).json()
    assert (flags["redemptions_enabled"], flags["updated_by"]) == (False, "alert:DuplicateCouponDetected:fp-dup")
