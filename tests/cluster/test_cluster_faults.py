"""The CI-sized cluster: 3 brokers and 2 instances of every service, as `points up --brokers 3
--instances 2` runs them, with its own state folder and ports beside the main test stack.

Under load it loses one broker, then one instance of each service (each stays down past the group's
session timeout, so the survivors take its partitions over), then every broker in turn; after all of
it nothing acknowledged is lost or doubled, and the redeemer agrees with the ledger."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import httpx
import pytest

from deploy import chaos
from shared.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration

# Ports of their own (the main test stack uses 18000-18004, 19092-19093 and 55442).
CLUSTER_ENV = {
    "POINTS_ENV": "test",
    "POINTS_STATE_DIR": str(REPO_ROOT / ".state" / "test-cluster"),
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:29092",
    "POINTS_POSTGRES_PORT": "55462",
    "POINTS_GATEWAY_PORT": "28000",
    "POINTS_GATEWAY_OPS_PORT": "28004",
    "POINTS_VALIDATOR_PORT": "28001",
    "POINTS_PROJECTOR_PORT": "28002",
    "POINTS_REDEEMER_PORT": "28003",
    "POINTS_STUCK_PENDING_SECONDS": "60",
    # Its own brokers and PostgreSQL from the local launchers, even when the session's test stack
    # runs in containers (testcontainers sets these for the session).
    "POINTS_MANAGE_KAFKA": "true",
}


def points(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], env={**inherited, **env}, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cluster():
    """Started the way a user starts it: `points up --brokers 3 --instances 2`."""
    from deploy.stack import Stack

    shutil.rmtree(CLUSTER_ENV["POINTS_STATE_DIR"], ignore_errors=True)
    started = points("up", "--brokers", "3", "--instances", "2", env=CLUSTER_ENV)
    assert started.returncode == 0, started.stderr[-3000:]
    stack = Stack(Settings(**CLUSTER_ENV, DATABASE_URL=None))  # its own PostgreSQL, as `points up` gave it
    yield stack
    stack.down(echo=lambda _: None)
    shutil.rmtree(CLUSTER_ENV["POINTS_STATE_DIR"], ignore_errors=True)


def test_status_names_every_broker_and_every_instance(cluster):
    report = json.loads(points("status", "--json", env=CLUSTER_ENV).stdout)

    names = {"postgres", "kafka-1", "kafka-2", "kafka-3"} | {
        f"{kind}-{n}" for kind in ("ingest", "validator", "projector", "redeemer") for n in (1, 2)}
    assert set(report["services"]) == names
    assert all(info["ready"] and info["pid"] for info in report["services"].values())
    assert report["kafka_bootstrap"] == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    assert report["gateway_urls"] == ["http://127.0.0.1:28000", "http://127.0.0.1:28010"]
    assert report["gateway_url"] == report["gateway_urls"][0]


async def test_topics_are_replicated_three_times_with_two_in_sync_required(cluster):
    from aiokafka.admin import AIOKafkaAdminClient

    from shared import topics
    from shared.topic_admin import describe

    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        found = await describe(admin, list(topics.ALL))
    finally:
        await admin.close()
    assert set(found) == set(topics.ALL)
    for name, topic in found.items():
        assert topic.replication_factor == 3, name
        assert topic.configs["min.insync.replicas"][0] == "2", name
        assert topic.configs["unclean.leader.election.enable"][0] == "false", name


async def test_an_event_posted_to_either_gateway_is_decided_once(cluster):
    from services.ingest.auth import mint_dev_token

    user = f"cluster-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {mint_dev_token(cluster.settings, user, 'user', 600)}"}
    ids = []
    async with httpx.AsyncClient(timeout=15) as http:
        for n, gateway in enumerate(["http://127.0.0.1:28000", "http://127.0.0.1:28010"]):
            body = {"event_type": "habit_completed", "nonce": f"n-{n}-{uuid.uuid4().hex}",
                    "event_time": datetime.now(timezone.utc).isoformat(), "payload": {"habit_id": f"h{n}"}}
            response = await http.post(f"{gateway}/v1/events", json=body, headers=headers)
            assert response.status_code == 202, response.text
            ids.append(response.json()["event_id"])
        for _ in range(150):
            seen = [(await http.get(f"http://127.0.0.1:28010/v1/events/{i}", headers=headers)).json() for i in ids]
            if all(s.get("validation_status") not in (None, "pending") for s in seen):
                break
            await asyncio.sleep(0.2)
    assert [s["event_id"] for s in seen] == ids
    assert all(s["validation_status"] != "pending" for s in seen), seen


@pytest.mark.timeout(1500)
async def test_nothing_acknowledged_is_lost_or_doubled_when_brokers_and_instances_fail(cluster):
    report = await chaos.run(cluster, faults=chaos.cluster_faults(cluster), users=8, spenders=3, gap_seconds=4,
                             down_seconds=12, echo=lambda msg: print(f"[cluster] {msg}", flush=True))
    print(report.markdown())
    assert [f.name for f in report.faults] == ["kill-kafka-2", "kill-ingest-1", "kill-validator-1",
                                               "kill-projector-2", "kill-redeemer-1", "roll-kafka"]
    assert report.tally.client_errors == []
    assert len(report.tally.events_acked) > 100 and report.tally.coupons_acked
    for invariant, holds in report.checks.items():
        assert holds, (invariant, report.details)
