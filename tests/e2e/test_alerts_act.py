"""`points up --monitoring` on a system of its own: a real fault fires a rule in a real Prometheus,
Alertmanager calls the gateway, and the kill switch goes off, naming the alert."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid

import asyncpg
import httpx
import pytest

from shared.settings import REPO_ROOT
from tests.e2e.test_fresh_start import FRESH_ENV, points, until
from tests.helpers import habit_event

pytestmark = pytest.mark.integration
# Under the repository, not pytest's tmp_path: PostgreSQL runs as its own system user.
STATE = REPO_ROOT / ".state" / "test-monitoring"
MONITORED_ENV = {**FRESH_ENV, "POINTS_PROMETHEUS_PORT": "28090", "POINTS_ALERTMANAGER_PORT": "28093",
                 "POINTS_MONITORING_INTERVAL_SECONDS": "1", "POINTS_HEALTH_CHECK_SECONDS": "1",
                 "POINTS_FLAGS_REFRESH_SECONDS": "0.5",
                 # The cache is edited past the projector below: the pass over every user finds that.
                 "POINTS_BALANCE_CHECK_EVERYONE_SECONDS": "2"}


@pytest.mark.timeout(600)
def test_a_cache_that_disagrees_with_the_ledger_fires_a_rule_and_alertmanager_turns_the_kill_switch_off(settings):
    if not settings.manage_kafka or not settings.uses_embedded_postgres:
        pytest.skip("the local launchers' system; this session uses containers")
    for tool in ("prometheus", "prometheus-alertmanager"):
        assert shutil.which(tool), f"{tool} is missing: apt-get install {tool} (.ci/run does)"
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, **MONITORED_ENV,
           "POINTS_STATE_DIR": str(STATE)}
    shutil.rmtree(STATE, ignore_errors=True)
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{FRESH_ENV['POINTS_GATEWAY_PORT']}", timeout=30)
    try:
        up = points(env, "up", "--monitoring")
        assert up.returncode == 0, up.stdout + up.stderr
        status = json.loads(points(env, "status", "--json").stdout)["services"]
        assert status["prometheus"]["ready"] and status["alertmanager"]["ready"], status
        admin = {"Authorization": f"Bearer {points(env, 'dev-token', '--sub', 'sre', '--role', 'admin').stdout.strip()}"}
        user = f"monitored-{uuid.uuid4().hex[:8]}"
        award = gateway.post("/v1/admin/awards", json={"user_id": user, "points": 50, "reason": "start"},
                             headers={**admin, "Idempotency-Key": uuid.uuid4().hex})
        assert award.status_code == 201, award.text

        async def tamper() -> None:  # what the guide's alert exists for: a cache that drifted from the ledger
            conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{FRESH_ENV['POINTS_POSTGRES_PORT']}/points")
            try:
                await conn.execute("UPDATE user_points_cache SET available_points = available_points + 1000 "
                                   "WHERE user_id = $1", user)
            finally:
                await conn.close()

        until(lambda: gateway.get("/v1/admin/users/" + user + "/history", headers=admin).json(), what="the award")
        until(lambda: asyncio.run(cached(user)), what="the cache row")
        asyncio.run(tamper())

        prometheus = f"http://127.0.0.1:{MONITORED_ENV['POINTS_PROMETHEUS_PORT']}"
        until(lambda: any(a["labels"]["alertname"] == "PointsCacheDiscrepancy" and a["state"] == "firing"
                          for a in httpx.get(f"{prometheus}/api/v1/alerts").json()["data"]["alerts"]),
              within=90, what="the rule firing in Prometheus")
        flags = until(lambda: (f := gateway.get("/v1/admin/flags", headers=admin).json())
                      and not f["points_system_enabled"] and f, within=90, what="the kill switch off")
        assert flags["updated_by"].startswith("alert:PointsCacheDiscrepancy:")
        user_token = {"Authorization": f"Bearer {points(env, 'dev-token', '--sub', user).stdout.strip()}"}
        refused = until(lambda: (r := gateway.post("/v1/events", json=habit_event(), headers=user_token))
                        .status_code == 503 and r, what="writes refused")
        assert refused.json()["type"].endswith("/points-disabled")
    finally:
        gateway.close()
        points(env, "down")
        shutil.rmtree(STATE, ignore_errors=True)


async def cached(user: str) -> bool:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{FRESH_ENV['POINTS_POSTGRES_PORT']}/points")
    try:
        return bool(await conn.fetchval("SELECT 1 FROM user_points_cache WHERE user_id = $1", user))
    finally:
        await conn.close()
