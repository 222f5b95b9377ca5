"""Dropping the read models and replaying the log from offset 0 gives the same rows."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from services.projector.rebuild import compare, create_schema, drop_schema, new_schema_name, rebuild_and_compare
from tests.helpers import decided_event, eventually, fund, habit_event, new_user, spaced

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def traffic(gateway, token):
    """Some of everything the projector writes: decisions, a review, insights, coupons, answers."""
    admin = token("rebuild-admin", "admin")
    user = new_user()
    headers = token(user)
    first, second = spaced(2)
    ids = [(await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)).json()["event_id"]
           for at in (first, second, second)]
    for event_id in ids:
        await decided_event(gateway, headers, event_id)
    await fund(gateway, admin, headers, user, 600)
    template = (await gateway.post("/v1/admin/coupon-templates", json={"name": "R", "partner": "P", "points_cost": 500},
                                   headers=admin)).json()
    redeemed = await gateway.post("/v1/redemptions", json={"template_id": template["template_id"]},
                                  headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    assert redeemed.status_code == 201

    async def coupon_listed():
        return (await gateway.get("/v1/me/coupons", headers=headers)).json()

    await eventually(coupon_listed)


async def test_the_rebuilt_read_models_equal_the_live_ones(settings, traffic):
    schema, results = await rebuild_and_compare(settings)
    assert {r.table for r in results} == {"points_events", "user_points_cache", "coupons", "fraud_insights",
                                          "command_answers"}
    for result in results:
        assert result.matches, result
        assert result.live_rows > 0, result.table


async def test_the_comparison_notices_a_tampered_live_row(settings, db, traffic):
    schema = new_schema_name()
    await create_schema(settings.dsn, schema)
    try:
        _, results = await rebuild_and_compare(settings)
        assert all(r.matches for r in results)
        async with db.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE user_points_cache SET pending_points = pending_points + 1 "
                               "WHERE user_id = (SELECT user_id FROM user_points_cache LIMIT 1)")
            from services.projector.rebuild import replay_into, live_positions

            await replay_into(settings, schema, await live_positions(db, "public"))
            mismatched = {r.table for r in await compare(conn, "public", schema) if not r.matches}
            assert mismatched == {"user_points_cache"}
            raise _Rollback
    except _Rollback:
        pass
    finally:
        await drop_schema(settings.dsn, schema)


class _Rollback(Exception):
    pass


def test_points_projector_rebuild_reports_a_match(settings, traffic):
    result = subprocess.run([sys.executable, "-m", "deploy.cli", "projector", "rebuild"], capture_output=True,
                            text=True, env=os.environ, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "points_events" in result.stdout and "NO" not in result.stdout
