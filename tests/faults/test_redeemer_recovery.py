"""The redeemer keeps every balance and every answer across kill -9: what it remembers comes back
from its compacted state topic and its input from the last committed offsets."""
from __future__ import annotations

import asyncio
import os
import signal
import uuid

import pytest

from tests.faults.test_backpressure_and_shutdown import exited, pid_of, quiet, redeem
from tests.helpers import coupon_template, discrepancies, eventually, fund, new_user

pytestmark = pytest.mark.integration


async def test_a_redeemer_killed_between_a_credit_and_a_spend_keeps_the_balance_and_its_answers(
        stack, gateway, token, db):
    admin = token("support@example.com", "admin")
    template_id = await coupon_template(gateway, admin, 200, "Survives kill -9")
    user = new_user()
    headers = token(user)
    await fund(gateway, admin, headers, user, 500)
    key = uuid.uuid4().hex
    first = await redeem(gateway, headers, template_id, key)
    assert first.status_code == 201, first.text
    # A credit the redeemer may or may not have read when it dies: 500 - 200 + 100 = 400 either way.
    award = await gateway.post("/v1/admin/awards", json={"user_id": user, "points": 100, "reason": "late credit"},
                               headers={**admin, "Idempotency-Key": uuid.uuid4().hex})
    assert award.status_code == 201, award.text

    pid = pid_of(stack, "redeemer")
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: exited(pid), timeout=30)
    await asyncio.to_thread(stack.heal, echo=quiet)

    again = await redeem(gateway, headers, template_id, key)
    spends = [await redeem(gateway, headers, template_id) for _ in range(3)]

    assert again.status_code == 201 and again.json() == first.json()  # the past answer, not a second coupon
    # Forgetting the first debit would allow three more; forgetting the late credit, one; forgetting
    # everything, none.
    assert [s.status_code for s in spends] == [201, 201, 409], [s.text for s in spends]
    assert spends[2].json()["type"].endswith("/insufficient-points")

    async def projected():
        balance = (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"]
        coupons = await db.fetchval("SELECT count(*) FROM coupons WHERE user_id = $1", user)
        return (balance, coupons) == (0, 3)

    await eventually(projected, timeout=30)
    assert await discrepancies(db, user) == []
