"""Small helpers the integration and end-to-end tests share."""
from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.guide_queries import BALANCE_DISCREPANCIES


def new_user() -> str:
    return f"user-{uuid.uuid4()}"


def habit_event(*, at: datetime | None = None, nonce: str | None = None, **extra) -> dict:
    at = at or datetime.now(timezone.utc)
    return {
        "event_type": "habit_completed",
        "event_time": at.isoformat().replace("+00:00", "Z"),
        "nonce": nonce or uuid.uuid4().hex,
        "payload": {"habit_id": "h1"},
        **extra,
    }


def spaced(n: int, seconds: float = 60) -> list[datetime]:
    """`n` event times, `seconds` apart, ending now."""
    now = datetime.now(timezone.utc)
    return [now - timedelta(seconds=seconds * (n - 1 - i)) for i in range(n)]


async def eventually(check, *, timeout: float = 30.0, interval: float = 0.1):
    """Poll `check` (async, returning a truthy value when done) until it succeeds or time runs out."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value {last!r}")


async def decided_event(gateway: httpx.AsyncClient, headers: dict, event_id: str, timeout: float = 30.0) -> dict:
    async def check():
        response = await gateway.get(f"/v1/events/{event_id}", headers=headers)
        if response.status_code == 200 and response.json()["validation_status"] != "pending":
            return response.json()
        return None

    return await eventually(check, timeout=timeout)


def skip_unless_the_stack_runs(stack, *parts: str) -> None:
    """Skip a fault test that stops Kafka or PostgreSQL when the stack did not start them (they run in
    containers under testcontainers): stopping them is then not this stack's to do."""
    runs = {"kafka": stack.settings.manage_kafka, "postgres": stack.postgres is not None}
    missing = [part for part in parts if not runs[part]]
    if missing:
        pytest.skip(f"{' and '.join(missing)} run in containers here, which this test cannot stop and start")


async def recorded_before_a_marker(gateway: httpx.AsyncClient, headers: dict) -> list[dict]:
    """The user's history apart from a marker event accepted now, once the marker is decided and
    shown: a user's records stay in order on the log, so anything that reached it before the marker
    (a request that should have been refused, say) is in the history by then."""
    marker = await gateway.post("/v1/events", json=habit_event(), headers=headers)
    assert marker.status_code == 202, marker.text
    marker_id = marker.json()["event_id"]
    await decided_event(gateway, headers, marker_id)

    async def shown():
        items = (await gateway.get("/v1/me/history", headers=headers)).json()["items"]
        return items if marker_id in {i["event_id"] for i in items} else None

    return [item for item in await eventually(shown) if item["event_id"] != marker_id]


async def discrepancies(db, *users: str) -> list:
    """The guide's "balances match ledger" check, verbatim inside, for these users only: each test
    answers for its own users, not for what other tests left in the shared database."""
    guide = BALANCE_DISCREPANCIES.strip().rstrip(";")
    return await db.fetch(f"SELECT * FROM ({guide}) AS d WHERE d.user_id = ANY($1::text[])", list(users))


async def fund(gateway: httpx.AsyncClient, admin_headers: dict, user_headers: dict, user: str, points: int) -> dict:
    """Credit `user` through an admin award and wait until the balance shows it."""
    before = (await gateway.get("/v1/me/points", headers=user_headers)).json()["available_points"]
    response = await gateway.post("/v1/admin/awards", json={"user_id": user, "points": points, "reason": "test funds"},
                                  headers={**admin_headers, "Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 201, response.text

    async def credited():
        balance = (await gateway.get("/v1/me/points", headers=user_headers)).json()
        return balance if balance["available_points"] == before + points else None

    return await eventually(credited)


# An App Attest proof that cannot verify: the event is held for review rather than decided.
SUSPICIOUS = {"type": "app_attest", "token": "bm90LWFuLWFzc2VydGlvbg", "key_id": "bm8ta2V5"}


async def held_event(gateway: httpx.AsyncClient, headers: dict, at: datetime | None = None) -> str:
    """Submit an event the validator holds for review; its id once it waits in the queue."""
    response = await gateway.post("/v1/events", json={**habit_event(at=at), "attestation": SUSPICIOUS},
                                  headers=headers)
    decided = await decided_event(gateway, headers, response.json()["event_id"])
    assert decided["validation_status"] == "pending_review"
    return decided["event_id"]


async def coupon_template(gateway: httpx.AsyncClient, admin_headers: dict, points_cost: int,
                          name: str = "Test coupon") -> str:
    """A new active template; its id."""
    response = await gateway.post("/v1/admin/coupon-templates", headers=admin_headers, json={
        "name": name, "partner": "Example", "points_cost": points_cost, "valid_days": 30})
    assert response.status_code == 201, response.text
    return response.json()["template_id"]


async def one_coupon_customer(gateway: httpx.AsyncClient, token, points_cost: int, name: str) -> tuple[str, dict, str]:
    """A new template and a new user whose balance pays for exactly one of its coupons: user, headers, template."""
    admin = token("support@example.com", "admin")
    template_id = await coupon_template(gateway, admin, points_cost, name)
    user = new_user()
    headers = token(user)
    await fund(gateway, admin, headers, user, points_cost)
    return user, headers, template_id


async def produce(settings, records, partition: int | None = None) -> None:
    """Write (topic, Record) pairs straight onto the log, as a broker client would (acks=all)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for topic, record in records:
            await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers,
                                         partition=partition)
    finally:
        await producer.stop()
