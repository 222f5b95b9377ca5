"""The deployment guide's artillery checks, run with the pinned artillery against the local system."""
from __future__ import annotations

import asyncio

import pytest

from deploy.bench import run_artillery
from tests.helpers import discrepancies, one_coupon_customer

pytestmark = pytest.mark.integration


async def test_the_guides_concurrent_redemption_race_lets_exactly_one_through(gateway, token, db, tmp_path):
    user, headers, template_id = await one_coupon_customer(gateway, token, 300, "Race")

    aggregate = await asyncio.to_thread(
        run_artillery, "redeem-race.yml", str(gateway.base_url).rstrip("/"), tmp_path / "race.json",
        POINTS_TOKEN=headers["Authorization"].removeprefix("Bearer "), POINTS_TEMPLATE_ID=template_id)

    counters = aggregate["counters"]
    assert counters["http.requests"] == 20
    assert counters.get("http.codes.201") == 1 and counters.get("http.codes.409") == 19, counters
    # Every refusal was for want of points (the gateway keeps each key's answer for retries).
    refusals = await db.fetch("SELECT response FROM idempotency_keys WHERE scope = $1 AND status_code = 409",
                              f"redeem:{user}")
    assert len(refusals) == 19
    assert {r["response"]["type"].rsplit("/", 1)[-1] for r in refusals} == {"insufficient-points"}
    coupons = (await gateway.get("/v1/me/coupons", headers=headers)).json()
    assert len(coupons) == 1
    assert (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 0
    assert await discrepancies(db, user) == []
