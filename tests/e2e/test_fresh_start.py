"""A new user on a fresh machine: `points up` from an empty state directory (no topics, no data),
then the README's try-it. Several times in a row, each from nothing, with no restart in between."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from shared.settings import REPO_ROOT
from tests.helpers import habit_event

pytestmark = pytest.mark.integration

STARTS = 3
# Its own ports and state, beside the session's test stack.
FRESH_ENV = {
    "POINTS_ENV": "test",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:29092",
    "POINTS_POSTGRES_PORT": "55452",
    "POINTS_GATEWAY_PORT": "28000",
    "POINTS_VALIDATOR_PORT": "28001",
    "POINTS_PROJECTOR_PORT": "28002",
    "POINTS_REDEEMER_PORT": "28003",
    "POINTS_MANAGE_KAFKA": "true",
}


def points(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=600)


def until(check, within: float = 60.0, what: str = "the condition"):
    """Poll `check` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} not met within {within:.0f} s")


def decided(gateway: str, headers: dict, event_id: str, within: float) -> dict:
    def check():
        response = httpx.get(f"{gateway}/v1/events/{event_id}", headers=headers, timeout=5)
        return response.json() if response.status_code == 200 and response.json()["validation_status"] != "pending" \
            else None

    return until(check, within, what=f"event {event_id} decided after `points up` returned")


@pytest.mark.timeout(900)
def test_every_fresh_start_decides_the_first_event_without_a_restart(settings):
    if not settings.manage_kafka or not settings.uses_embedded_postgres:
        pytest.skip("the fresh-start path is the local launchers'; this session uses containers")
    # Under the repository, not pytest's tmp_path: PostgreSQL runs as its own system user, and a
    # second pytest run on the machine makes /tmp/pytest-of-root private again under it.
    state = REPO_ROOT / ".state" / "test-fresh"
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, **FRESH_ENV,
           "POINTS_STATE_DIR": str(state)}
    gateway = f"http://127.0.0.1:{FRESH_ENV['POINTS_GATEWAY_PORT']}"
    try:
        for start in range(STARTS):
            shutil.rmtree(state, ignore_errors=True)

            up = points(env, "up")
            assert up.returncode == 0, f"start {start + 1}: {up.stderr[-2000:]}"
            token = points(env, "dev-token", "--sub", f"fresh-{start}").stdout.strip()
            headers = {"Authorization": f"Bearer {token}"}
            accepted = httpx.post(f"{gateway}/v1/events", json=habit_event(), headers=headers, timeout=15)
            assert accepted.status_code == 202, accepted.text

            # Seconds, not minutes: before the fix a fresh validator never decided anything at all.
            event = decided(gateway, headers, accepted.json()["event_id"], within=30)
            assert event["validation_status"] == "validated"
            balance = httpx.get(f"{gateway}/v1/me/points", headers=headers, timeout=5).json()
            assert balance["available_points"] == event["points_delta"]

            assert points(env, "down").returncode == 0
            status = json.loads(points(env, "status", "--json").stdout)
            assert all(part["pid"] is None for part in status["services"].values()), status
    finally:
        points(env, "down")
        shutil.rmtree(state, ignore_errors=True)
