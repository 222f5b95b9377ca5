"""Bad requests get an RFC 9457 problem document and change nothing."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from tests.helpers import habit_event, new_user, recorded_before_a_marker

pytestmark = pytest.mark.integration


def assert_problem(response, status: int, slug: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    if slug:
        assert body["type"].endswith("/" + slug)
    return body


async def test_a_request_without_a_token_is_unauthorized(gateway):
    assert_problem(await gateway.get("/v1/me/points"), 401)


def claims(sub: str, **changes) -> dict:
    """Every claim a valid token carries, so a refusal is for the one thing a test changes."""
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + 60, "aud": "points-ledger", **changes}


async def test_an_unsigned_token_is_refused(gateway):
    forged = jwt.encode(claims("mallory"), key=None, algorithm="none")
    assert_problem(await gateway.get("/v1/me/points", headers={"Authorization": f"Bearer {forged}"}), 401)


async def test_a_token_signed_with_another_key_is_refused(gateway):
    forged = jwt.encode(claims("mallory"), "not-the-secret-" * 4, algorithm="HS256")
    assert_problem(await gateway.get("/v1/me/points", headers={"Authorization": f"Bearer {forged}"}), 401)


async def test_an_expired_token_is_refused(gateway, settings):
    # Past the 60 s allowed for clock skew between an identity provider and us.
    now = int(time.time())
    expired = jwt.encode(claims("alice", iat=now - 600, exp=now - 120), settings.jwt_secret.get_secret_value(),
                         algorithm="HS256")
    assert_problem(await gateway.get("/v1/me/points", headers={"Authorization": f"Bearer {expired}"}), 401)


async def test_a_merchant_cannot_submit_app_events(gateway, token):
    response = await gateway.post("/v1/events", json=habit_event(), headers=token(new_user(), "merchant"))
    assert_problem(response, 403)


async def test_an_unknown_event_type_is_unprocessable_and_nothing_is_recorded(gateway, token):
    headers = token(new_user())
    response = await gateway.post("/v1/events", json=habit_event(event_type="levelled_up"), headers=headers)
    body = assert_problem(response, 422)
    assert body["errors"][0]["pointer"] == "/event_type"
    assert await recorded_before_a_marker(gateway, headers) == []


async def test_schema_errors_list_each_offending_field(gateway, token):
    response = await gateway.post("/v1/events", json={"event_type": "habit_completed", "nonce": "short"},
                                  headers=token(new_user()))
    body = assert_problem(response, 422, "validation-error")
    pointers = {error["pointer"] for error in body["errors"]}
    assert {"/event_time", "/nonce"} <= pointers


async def test_malformed_json_is_a_problem_not_a_crash(gateway, token):
    headers = {**token(new_user()), "content-type": "application/json"}
    assert_problem(await gateway.post("/v1/events", content=b"{not json", headers=headers), 422)


@pytest.mark.parametrize("offset", [timedelta(minutes=6), timedelta(hours=-25)])
async def test_an_event_time_outside_the_window_is_stale(gateway, token, offset):
    at = datetime.now(timezone.utc) + offset
    response = await gateway.post("/v1/events", json=habit_event(at=at), headers=token(new_user()))
    assert_problem(response, 422, "stale-event")


async def test_a_body_over_64_kib_is_too_large(gateway, token):
    event = habit_event(payload={"habit_id": "h1", "notes": "x" * (65 * 1024)})
    assert_problem(await gateway.post("/v1/events", json=event, headers=token(new_user())), 413)


async def test_an_unknown_event_id_is_not_found(gateway, token):
    response = await gateway.get("/v1/events/6f1c1c9e-0000-4000-8000-000000000000", headers=token(new_user()))
    assert_problem(response, 404)


async def test_text_postgresql_cannot_store_is_refused_before_anything_is_recorded(gateway, token):
    headers = token(new_user())
    event = habit_event(payload={"habit_id": "h\x001"})
    assert_problem(await gateway.post("/v1/events", json=event, headers=headers), 422)
    admin = token("nul-admin", "admin")
    template = {"name": "bad\x00name", "partner": "P", "points_cost": 10}
    assert_problem(await gateway.post("/v1/admin/coupon-templates", json=template, headers=admin), 422)
    assert_problem(await gateway.get("/v1/admin/users/a%00b/history", headers=admin), 422)
    assert await recorded_before_a_marker(gateway, headers) == []
