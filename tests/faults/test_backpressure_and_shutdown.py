"""Backpressure and shutdown: a broker outage is refused honestly, and a stop signal finishes what was taken."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid

import psutil
import pytest

from tests.helpers import (decided_event, discrepancies, eventually, habit_event, new_user, one_coupon_customer,
                           skip_unless_the_stack_runs, spaced)

pytestmark = pytest.mark.integration


def quiet(_: str) -> None:
    pass


def pid_of(stack, name: str) -> int:
    pid = stack.service(name).process().pid()
    assert pid is not None, f"{name} is not running"
    return pid


async def exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_with_kafka_down_the_gateway_refuses_with_503_and_the_retry_afterwards_counts_once(
        stack, gateway, token, db):
    skip_unless_the_stack_runs(stack, "kafka")
    user = new_user()
    headers = token(user)
    body = habit_event()
    await asyncio.to_thread(stack.kafka.stop)
    try:
        refused = await gateway.post("/v1/events", json=body, headers=headers)
        readiness = await gateway.get("/readyz")
    finally:
        await asyncio.to_thread(stack.heal, echo=quiet)

    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("/kafka-unavailable")
    assert int(refused.headers["Retry-After"]) >= 1
    # A load balancer stops sending traffic to a gateway that cannot store it.
    assert readiness.status_code == 503 and readiness.json()["checks"]["kafka"] is False

    async def retried():
        response = await gateway.post("/v1/events", json=body, headers=headers)
        return response if response.status_code in (200, 202) else None

    accepted = await eventually(retried, timeout=60, interval=1)
    decided = await decided_event(gateway, headers, accepted.json()["event_id"], timeout=60)
    assert decided["validation_status"] == "validated"
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1", user) == 1
    balance = (await gateway.get("/v1/me/points", headers=headers)).json()
    assert balance["available_points"] == decided["points_delta"]


async def test_sigterm_lets_the_gateway_answer_a_redemption_it_has_taken_before_it_exits(stack, gateway, token, db):
    user, headers, template_id = await one_coupon_customer(gateway, token, 100, "Drain test")
    key = uuid.uuid4().hex
    redeemer = pid_of(stack, "redeemer")
    gateway_pid = pid_of(stack, "ingest")

    os.kill(redeemer, signal.SIGSTOP)  # the command waits unanswered, so the request stays in flight
    try:
        request = asyncio.create_task(gateway.post("/v1/redemptions", json={"template_id": template_id},
                                                   headers={**headers, "Idempotency-Key": key}))

        async def in_flight():
            return await db.fetchval("SELECT command_id FROM idempotency_keys WHERE scope = $1 AND key = $2 "
                                     "AND status_code IS NULL", f"redeem:{user}", key)

        redemption_id = await eventually(in_flight)
        os.kill(gateway_pid, signal.SIGTERM)
    finally:
        os.kill(redeemer, signal.SIGCONT)
    try:
        answered = await request
        await eventually(lambda: exited(gateway_pid), timeout=60)
    finally:
        await asyncio.to_thread(stack.heal, echo=quiet)

    # The request taken before the signal got its answer (not a dropped connection) ...
    assert answered.status_code in (201, 202), answered.text
    # ... and what it answered holds once the gateway is back.
    async def redeemed():
        found = await gateway.get(f"/v1/redemptions/{redemption_id}", headers=headers)
        return found.json() if found.status_code == 200 and found.json()["status"] == "redeemed" else None

    await eventually(redeemed, timeout=60)
    assert (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] == 0
    assert await discrepancies(db, user) == []


def logged_since(log, offset: int) -> str:
    with open(log, "rb") as lines:
        lines.seek(offset)
        return lines.read().decode()


def said_it_stopped_drained(tail: str) -> bool:
    """Whether a log line of `tail` is the service's `points.stopped` with `drained: true`."""
    lines = [json.loads(line) for line in tail.splitlines() if line.startswith("{")]
    return any(line.get("msg") == "points.stopped" and line.get("drained") is True for line in lines)


async def stop_gracefully(stack, service: str) -> str:
    """SIGTERM the service, wait for it to exit, start it again; what it logged meanwhile."""
    log = stack.service(service).process().log_file
    logged_before = log.stat().st_size
    pid = pid_of(stack, service)
    os.kill(pid, signal.SIGTERM)
    try:
        await eventually(lambda: exited(pid), timeout=60)
    finally:
        await asyncio.to_thread(stack.heal, echo=quiet)
    return logged_since(log, logged_before)


async def test_sigterm_stops_the_projector_cleanly_and_its_successor_projects_where_it_left_off(
        stack, gateway, token, db):
    user = new_user()
    headers = token(user)
    submitted = [await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)
                 for at in spaced(3)]

    tail = await stop_gracefully(stack, "projector")

    assert said_it_stopped_drained(tail), tail
    assert "Traceback" not in tail
    decided = [await decided_event(gateway, headers, r.json()["event_id"], timeout=60) for r in submitted]
    assert [d["validation_status"] for d in decided] == ["validated"] * 3, decided
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1", user) == 3
    balance = (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"]
    assert balance == sum(d["points_delta"] for d in decided) > 0
    assert await discrepancies(db, user) == []


async def redeem(gateway, headers, template_id: str, key: str | None = None):
    return await gateway.post("/v1/redemptions", json={"template_id": template_id},
                              headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex})


async def test_sigterm_lets_the_redeemer_finish_a_redemption_in_hand_and_its_successor_knows_it(
        stack, gateway, token, db):
    user, headers, template_id = await one_coupon_customer(gateway, token, 300, "Drained by SIGTERM")
    key = uuid.uuid4().hex
    in_flight = asyncio.create_task(redeem(gateway, headers, template_id, key))
    await asyncio.sleep(0.05)  # the request is on its way when the signal arrives

    tail = await stop_gracefully(stack, "redeemer")
    first = await in_flight
    again = await redeem(gateway, headers, template_id, key)
    another = await redeem(gateway, headers, template_id)

    assert said_it_stopped_drained(tail), tail
    assert "Traceback" not in tail
    # Whether the gateway answered before the stop or after the successor took over, the one
    # redemption the balance pays for happened once, and its retry gets the same coupon.
    assert again.status_code == 201, again.text
    if first.status_code == 201:
        assert first.json() == again.json()
    assert another.status_code == 409 and another.json()["type"].endswith("/insufficient-points")

    async def projected():
        return await db.fetchval("SELECT count(*) FROM coupons WHERE user_id = $1", user) == 1

    await eventually(projected, timeout=30)
    assert await discrepancies(db, user) == []
