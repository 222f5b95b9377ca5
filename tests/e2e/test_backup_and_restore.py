"""`points backup` and `points restore` on a system of their own: what a restored system answers is what
it answered when the backup was taken, and every service picks up where that moment left it."""
from __future__ import annotations

import os
import shutil
import uuid

import httpx
import pytest

from shared.settings import REPO_ROOT
from tests.e2e.test_fresh_start import FRESH_ENV, points, until
from tests.helpers import habit_event

pytestmark = pytest.mark.integration
# Under the repository, not pytest's tmp_path: PostgreSQL runs as its own system user, and a second
# pytest run on the machine makes /tmp/pytest-of-root private again under it.
STATE = REPO_ROOT / ".state" / "test-backup"


@pytest.mark.timeout(900)
def test_a_restored_backup_answers_as_the_system_did_when_it_was_taken(settings, tmp_path):
    if not settings.manage_kafka or not settings.uses_embedded_postgres:
        pytest.skip("backups of the local launchers' Kafka and PostgreSQL; this session uses containers")
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, **FRESH_ENV,
           "POINTS_STATE_DIR": str(STATE)}
    shutil.rmtree(STATE, ignore_errors=True)
    # No kept-alive connections: the gateway is stopped and started under the client twice.
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{FRESH_ENV['POINTS_GATEWAY_PORT']}", timeout=30,
                           limits=httpx.Limits(max_keepalive_connections=0))

    def token(sub: str, role: str = "user") -> dict:
        return {"Authorization": f"Bearer {points(env, 'dev-token', '--sub', sub, '--role', role).stdout.strip()}"}

    def balance() -> int:
        return gateway.get("/v1/me/points", headers=user).json()["available_points"]

    def redeem(key: str | None = None) -> httpx.Response:
        return gateway.post("/v1/redemptions", json={"template_id": template_id},
                            headers={**user, "Idempotency-Key": key or uuid.uuid4().hex})

    try:
        up = points(env, "up")
        assert up.returncode == 0, up.stderr[-2000:]
        admin, user_id = token("backup-admin", "admin"), f"backup-{uuid.uuid4().hex[:8]}"
        user = token(user_id)
        award = gateway.post("/v1/admin/awards", json={"user_id": user_id, "points": 1000, "reason": "start"},
                             headers={**admin, "Idempotency-Key": uuid.uuid4().hex})
        assert award.status_code == 201, award.text
        until(lambda: balance() == 1000)
        template = gateway.post("/v1/admin/coupon-templates", headers=admin,
                                json={"name": "Backed up", "partner": "P", "points_cost": 300})
        template_id = template.json()["template_id"]
        key = uuid.uuid4().hex
        first = redeem(key)
        assert first.status_code == 201, first.text
        until(lambda: balance() == 700)

        taken = points(env, "backup", "--output", str(tmp_path / "backup"))
        assert taken.returncode == 0, taken.stdout + taken.stderr

        # The system runs on after the backup; what it does from here is what the restore undoes.
        assert redeem().status_code == 201
        until(lambda: balance() == 400)
        later = gateway.post("/v1/events", json=habit_event(), headers=user)
        assert later.status_code == 202

        restored = points(env, "restore", str(tmp_path / "backup"), "--yes")
        assert restored.returncode == 0, restored.stdout + restored.stderr

        assert balance() == 700
        assert len(gateway.get("/v1/me/coupons", headers=user).json()) == 1
        assert gateway.get(f"/v1/events/{later.json()['event_id']}", headers=user).status_code == 404
        again = redeem(key)  # the retry of the redemption made before the backup: the same coupon
        assert again.status_code == 201 and again.json() == first.json()
        # The redeemer came back at 700 too: two more coupons, then not enough points.
        assert [redeem().status_code for _ in range(3)] == [201, 201, 409]
        # And the validator decides what comes next.
        fresh = gateway.post("/v1/events", json=habit_event(), headers=user)
        assert fresh.status_code == 202
        until(lambda: gateway.get(f"/v1/events/{fresh.json()['event_id']}", headers=user).json()
              .get("validation_status") not in (None, "pending"))
    finally:
        gateway.close()
        points(env, "down")
        shutil.rmtree(STATE, ignore_errors=True)
