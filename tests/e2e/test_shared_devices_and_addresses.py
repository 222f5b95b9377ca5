"""Accounts farmed on one device or behind one address, end to end: the gateway passes the device
and (where the deployment records it) a keyed hash of the address, the validator counts the
accounts on each across every user, and the account past the limit is marked."""
from __future__ import annotations

import os
import random
import sys
import uuid

import httpx
import pytest

from services.validator.signals import RuleSet
from shared.settings import REPO_ROOT
from tests.helpers import decided_event, habit_event, new_user

pytestmark = pytest.mark.integration
RULES = RuleSet()


async def decide(client: httpx.AsyncClient, headers: dict, **extra) -> dict:
    """Post one event and wait for its decision, so the accounts are counted in this order."""
    response = await client.post("/v1/events", json=habit_event(**extra), headers=headers)
    assert response.status_code == 202, response.text
    return await decided_event(client, headers, response.json()["event_id"])


async def test_the_account_that_makes_a_device_shared_by_too_many_is_held_back_and_raises_an_insight(
        gateway, token, admin_headers):
    device = f"device-{uuid.uuid4().hex}"
    users = [new_user() for _ in range(RULES.accounts_per_device)]

    decisions = [await decide(gateway, token(user), device_id=device) for user in users]

    assert all(d["validation_status"] == "validated" for d in decisions[:-1]), decisions
    last = decisions[-1]
    assert last["validation_status"] != "validated" and "device_shared_by_accounts" in last["reasons"]
    insights = (await gateway.get("/v1/admin/fraud-insights", params={"severity": "high"},
                                  headers=admin_headers)).json()
    assert any(i["user_id"] == users[-1] and i["insight_type"] == "device_shared_by_accounts" for i in insights)
    # The same account on a device of its own is not marked.
    elsewhere = await decide(gateway, token(users[0]), device_id=f"device-{uuid.uuid4().hex}")
    assert "device_shared_by_accounts" not in elsewhere["reasons"]


@pytest.fixture
def admin_headers(token):
    return token("fraud-desk@example.com", "admin")


@pytest.fixture(scope="module")
def address_recording_gateway(stack):
    """A gateway of a deployment that records a keyed hash of each caller's address."""
    from deploy.launchers.process import ManagedProcess, wait_until

    settings = stack.settings
    port, ops_port = settings.gateway_port + 20, settings.gateway_ops_port + 20
    process = ManagedProcess("ingest-addresses", settings.state_dir)
    process.start([sys.executable, "-m", "services.ingest"], cwd=REPO_ROOT, env={
        **os.environ, "POINTS_GATEWAY_PORT": str(port), "POINTS_GATEWAY_OPS_PORT": str(ops_port),
        "POINTS_RECORD_CLIENT_IP": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, timeout=60,
                   what="address-recording gateway")
        yield url
    finally:
        process.stop()


def from_address(url: str, address: str) -> httpx.AsyncClient:
    """A client whose requests come from `address` (any 127.x.y.z is this machine's loopback)."""
    return httpx.AsyncClient(base_url=url, timeout=15, transport=httpx.AsyncHTTPTransport(local_address=address))


async def test_accounts_behind_one_address_are_counted_and_the_one_past_the_limit_is_marked(
        address_recording_gateway, token):
    crowded = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    quiet = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.1"
    users = [new_user() for _ in range(RULES.accounts_per_ip)]

    async with from_address(address_recording_gateway, crowded) as client:
        decisions = [await decide(client, token(user)) for user in users]
    async with from_address(address_recording_gateway, quiet) as client:
        alone = await decide(client, token(new_user()))

    assert not any("many_accounts_on_ip" in d["reasons"] for d in decisions[:-1]), decisions
    assert "many_accounts_on_ip" in decisions[-1]["reasons"]
    assert decisions[-1]["trust_score"] < decisions[0]["trust_score"]
    assert "many_accounts_on_ip" not in alone["reasons"]
