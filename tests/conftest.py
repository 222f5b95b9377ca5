"""Shared fixtures. Unit tests need none of these; integration and end-to-end tests get the real stack.

The test stack runs beside any developer stack: its own state folder and ports. Kafka and
PostgreSQL come from testcontainers when a Docker engine answers, from the local launchers
otherwise; the services themselves always run as local processes, exactly as `points up` runs them.
"""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time

import httpx
import pytest

from shared.settings import REPO_ROOT
from tests.devices import PlayIntegrityIssuer

# Google's side of Play Integrity for the test app; its keys are configured on the test gateways.
PLAY = PlayIntegrityIssuer("dev.points.habits")
APP_ATTEST_APP_ID = "V8H6LQ9448.io.uebelacker.AppAttestExample"  # the recorded fixtures' app

TEST_ENV = {
    "POINTS_ENV": "test",
    "POINTS_STATE_DIR": str(REPO_ROOT / ".state" / "test"),
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    "POINTS_POSTGRES_PORT": "55442",
    "POINTS_GATEWAY_PORT": "18000",
    "POINTS_VALIDATOR_PORT": "18001",
    "POINTS_PROJECTOR_PORT": "18002",
    "POINTS_REDEEMER_PORT": "18003",
    "POINTS_MERCHANT_FAILED_ATTEMPTS_PER_HOUR": "5",
    "POINTS_NONCE_CLEANUP_SECONDS": "0.5",
    "POINTS_FLAGS_REFRESH_SECONDS": "0.5",
    "POINTS_HEALTH_CHECK_SECONDS": "1",
    "POINTS_STUCK_PENDING_SECONDS": "60",
    "POINTS_ALERT_WEBHOOK_SECRET": "test-only-alert-webhook-secret-0123456789",
    "APP_ATTEST_APP_ID": APP_ATTEST_APP_ID,
    "APP_ATTEST_ENVIRONMENT": "development",
    # The recorded attestations' certificates were valid in 2024.
    "APP_ATTEST_VERIFY_AT": "2024-06-01T00:00:00Z",
    "PLAY_INTEGRITY_PACKAGE_NAME": PLAY.package,
    "PLAY_INTEGRITY_DECRYPTION_KEY": base64.b64encode(PLAY.decryption_key).decode(),
    "PLAY_INTEGRITY_VERIFICATION_KEY": base64.b64encode(PLAY.verification_key).decode(),
}


def docker_works() -> bool:
    if shutil.which("docker") is None or os.environ.get("POINTS_TESTS_NO_DOCKER"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def stack_env():
    """Environment of the test stack; applied to this process so in-process adapters agree with it."""
    saved = {k: os.environ.get(k) for k in [*TEST_ENV, "DATABASE_URL", "POINTS_MANAGE_KAFKA"]}
    os.environ.update(TEST_ENV)
    containers = []
    if docker_works():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        kafka = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft().start()
        postgres = PostgresContainer("postgres:16", driver=None).start()
        containers += [kafka, postgres]
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = kafka.get_bootstrap_server()
        os.environ["POINTS_MANAGE_KAFKA"] = "false"
        os.environ["DATABASE_URL"] = postgres.get_connection_url()
    else:
        os.environ.pop("DATABASE_URL", None)
    from shared.settings import Settings

    yield Settings()
    for container in containers:
        container.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def stack(stack_env):
    """The whole system, started once per session and stopped at the end."""
    from deploy.stack import Stack

    system = Stack(stack_env)
    # Every session starts from an empty log and empty tables, so no earlier run's rows linger.
    system.down(echo=lambda _: None)
    shutil.rmtree(stack_env.state_dir, ignore_errors=True)
    started = time.monotonic()
    system.up(echo=lambda msg: print(f"[stack] {msg}", flush=True))
    print(f"[stack] ready in {time.monotonic() - started:.1f}s", flush=True)
    yield system
    system.down(echo=lambda msg: print(f"[stack] {msg}", flush=True))


@pytest.fixture(scope="session")
def settings(stack):
    return stack.settings


@pytest.fixture(scope="session")
async def db(stack):
    from shared.db import create_pool

    pool = await create_pool(stack.settings.dsn, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def gateway(stack):
    async with httpx.AsyncClient(base_url=stack.settings.gateway_url, timeout=15) as client:
        yield client


@pytest.fixture(scope="session")
def token(stack):
    from services.ingest.auth import mint_dev_token

    def make(sub: str, role: str = "user", ttl: int = 600) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_dev_token(stack.settings, sub, role, ttl)}"}

    return make


@pytest.fixture(scope="session")
async def second_gateway(stack):
    """Another gateway process on its own port, sharing Kafka and PostgreSQL with the first."""
    import sys

    from deploy.launchers.process import ManagedProcess, wait_until

    port = stack.settings.gateway_port + 10
    process = ManagedProcess("ingest-2", stack.settings.state_dir)
    process.start([sys.executable, "-m", "services.ingest"],
                  env={**os.environ, "POINTS_GATEWAY_PORT": str(port)}, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, timeout=60, what="second gateway")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client
    process.stop()


@pytest.fixture(scope="session")
def play_integrity():
    return PLAY
