"""The guide's balance check behind the PointsCacheDiscrepancy alert, against the real database: over
everyone now and then, and in between over the users the projector wrote."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest

from services.projector import store
from services.projector.health import BalanceCheck
from services.projector.projection import Position, project
from shared.events import EventDecided
from tests.helpers import new_user

pytestmark = pytest.mark.integration


async def credit(db, user: str, points: int, offset: int) -> None:
    now = datetime.now(timezone.utc)
    decided = EventDecided(event_id=uuid.uuid4(), user_id=user, event_type="habit_completed", event_time=now,
                           points_delta=points, proof_type="none", validation_status="validated", trust_score=90,
                           rule_set="test", validated_by="test", decided_at=now)
    await store.apply_batch(db, "test-checks", [project(decided, Position("ledger", 0, offset))],
                            {("ledger", 0): offset + 1})


async def tamper(db, user: str) -> None:
    await db.execute("UPDATE user_points_cache SET available_points = 999 WHERE user_id = $1", user)


async def test_a_hand_edited_balance_is_found_by_the_pass_over_everyone(schema):
    db, honest, edited = schema, new_user(), new_user()
    await credit(db, honest, 10, 0)
    await credit(db, edited, 20, 1)
    check = BalanceCheck()
    await check.full(db, timeout=30)
    assert check.count == 0

    await tamper(db, edited)
    await check.recent(db, timeout=30)
    assert check.count == 0  # the projector wrote nobody since: the narrow pass looks at no one
    await check.full(db, timeout=30)
    assert check.discrepant == {edited}


async def test_between_passes_over_everyone_the_projectors_users_are_checked_and_cleared(schema):
    db, edited, written, untouched = schema, new_user(), new_user(), new_user()
    for offset, user in enumerate((edited, written, untouched)):
        await credit(db, user, 10, offset)
    check = BalanceCheck()
    await check.full(db, timeout=30)
    await tamper(db, edited)
    await tamper(db, written)

    check.wrote({written})
    await check.recent(db, timeout=30)
    assert check.discrepant == {written}
    assert check.touched == set()

    await credit(db, written, 5, 3)  # the projector refreshes the balance it writes
    check.wrote({written})
    await check.recent(db, timeout=30)
    assert check.discrepant == set()


async def test_the_narrow_pass_is_the_guides_query_for_those_users(schema):
    db = schema
    users = [new_user() for _ in range(4)]
    for offset, user in enumerate(users):
        await credit(db, user, 10 + offset, offset)
    for user in users[1:3]:
        await tamper(db, user)
    everyone, narrow = BalanceCheck(), BalanceCheck()
    await everyone.full(db, timeout=30)
    narrow.discrepant = set()
    narrow.wrote(users)
    await narrow.recent(db, timeout=30)
    assert narrow.discrepant == everyone.discrepant == set(users[1:3])


async def test_users_written_during_a_narrow_pass_wait_for_the_next_so_a_busy_projector_cannot_keep_one_going(
        schema):
    db, early, late = schema, new_user(), new_user()
    await credit(db, early, 10, 0)
    await credit(db, late, 10, 1)
    check = BalanceCheck()
    await check.full(db, timeout=30)
    check.wrote({early})

    narrow = asyncio.create_task(check.recent(db, timeout=30))
    await asyncio.sleep(0)  # the pass has taken its users and is waiting for PostgreSQL
    check.wrote({late})
    await narrow

    assert check.touched == {late}
