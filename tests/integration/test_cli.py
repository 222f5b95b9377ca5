"""The `points` command as an operator uses it, against the running test stack."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from tests.helpers import eventually

pytestmark = pytest.mark.integration

POINTS = [sys.executable, "-m", "deploy.cli"]


def points(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*POINTS, *args], capture_output=True, text=True, env=os.environ, timeout=300)


def test_status_json_names_every_part_with_its_pid(stack):
    result = points("status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["gateway_url"] == stack.settings.gateway_url
    assert report["gateway_urls"][0] == report["gateway_url"]
    assert report["kafka_bootstrap"] == stack.settings.kafka_bootstrap_servers
    assert report["database_url"] == stack.settings.dsn
    assert set(report["metrics_urls"]) == {"ingest", "validator", "projector", "redeemer"}
    expected = {"ingest", "validator", "projector", "redeemer"} | ({"kafka"} if stack.settings.manage_kafka else set()) \
        | ({"postgres"} if stack.settings.uses_embedded_postgres else set())
    assert set(report["services"]) == expected
    for name, info in report["services"].items():
        assert info["ready"] is True, name
        assert psutil.pid_exists(info["pid"]), name


async def test_up_restarts_only_the_parts_that_died(stack, gateway, token):
    before = json.loads(points("status", "--json").stdout)["services"]
    os.kill(before["projector"]["pid"], signal.SIGKILL)

    async def projector_dead():
        return json.loads(points("status", "--json").stdout)["services"]["projector"]["pid"] is None

    await eventually(projector_dead, timeout=10)
    assert points("up").returncode == 0
    after = json.loads(points("status", "--json").stdout)["services"]

    assert after["projector"]["pid"] != before["projector"]["pid"]
    assert all(after[name]["ready"] for name in after)
    assert {name: after[name]["pid"] for name in after if name != "projector"} == \
           {name: before[name]["pid"] for name in before if name != "projector"}


def test_dev_token_prints_a_token_the_gateway_accepts(stack):
    import httpx

    result = points("dev-token", "--sub", "cli-user", "--ttl", "60")
    assert result.returncode == 0
    response = httpx.get(f"{stack.settings.gateway_url}/v1/me/points",
                         headers={"Authorization": f"Bearer {result.stdout.strip()}"})
    assert response.status_code == 200 and response.json()["user_id"] == "cli-user"


def test_dev_token_refuses_when_a_real_secret_is_configured(stack):
    env = {**os.environ, "POINTS_JWT_SECRET": "a-production-secret-that-is-long-enough-123"}
    result = subprocess.run([*POINTS, "dev-token", "--sub", "x"], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "refused" in result.stderr
