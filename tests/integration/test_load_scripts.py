"""The deployment guide's artillery checks, run with the pinned artillery against the local system."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from shared.guide_queries import BALANCE_DISCREPANCIES
from tests.helpers import fund, new_user

pytestmark = pytest.mark.integration

LOAD = Path(__file__).resolve().parents[2] / "deploy" / "load"
ARTILLERY = LOAD / "node_modules" / ".bin" / "artillery"


def artillery(script: str, target: str, report: Path, **env: str) -> dict:
    assert ARTILLERY.exists(), "run `make load-tools` (make test does) to install the pinned artillery"
    subprocess.run([str(ARTILLERY), "run", "--quiet", "--target", target, "--output", str(report), script],
                   cwd=LOAD, env={**os.environ, **env, "ARTILLERY_DISABLE_TELEMETRY": "true"}, check=True,
                   capture_output=True, timeout=300)
    return json.loads(report.read_text())["aggregate"]["counters"]


async def test_the_guides_concurrent_redemption_race_lets_exactly_one_through(gateway, token, db, tmp_path):
    admin = token("support@example.com", "admin")
    template = (await gateway.post("/v1/admin/coupon-templates", json={
        "name": "Race", "partner": "Example", "points_cost": 300, "valid_days": 30}, headers=admin)).json()
    user = new_user()
    headers = token(user)
    await fund(gateway, admin, headers, user, 300)

    counters = await asyncio.to_thread(
        artillery, "redeem-race.yml", str(gateway.base_url).rstrip("/"), tmp_path / "race.json",
        POINTS_TOKEN=headers["Authorization"].removeprefix("Bearer "), POINTS_TEMPLATE_ID=template["template_id"])

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
    assert await db.fetch(BALANCE_DISCREPANCIES) == []
