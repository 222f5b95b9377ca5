"""The deployment guide's SQL runs as written against our read models.

Every ```sql block of docs/points-system-deployment-guide.md is executed statement by statement,
with its [PLACEHOLDERS] filled in, inside a transaction that is rolled back.
"""
from __future__ import annotations

import re
import uuid

import pytest
import sqlparse

from shared.settings import REPO_ROOT
from shared.guide_queries import BALANCE_DISCREPANCIES
from tests.helpers import new_user

pytestmark = pytest.mark.integration

GUIDE = REPO_ROOT / "docs" / "points-system-deployment-guide.md"

# Statements the guide itself says must fail: a signed-in user writing to the cache.
EXPECTED_TO_FAIL = re.compile(r"UPDATE user_points_cache SET available_points = 999999", re.I)


def guide_statements() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", GUIDE.read_text(), re.S)
    statements = []
    for block in blocks:
        for statement in sqlparse.split(block):
            code = sqlparse.format(statement, strip_comments=True).strip()
            if code:
                statements.append(code)
    return statements


def fill(statement: str, user: str, coupon: str) -> str:
    return (statement.replace("[USER_ID]", user).replace("[AFFECTED_USER_ID]", user)
            .replace("'test-user-uuid'", f"'{user}'").replace("[ADMIN_EMAIL]", "admin@example.com")
            .replace("[COUPON_ID]", coupon).replace("[POINTS_COST]", "100"))


def test_the_guide_has_the_queries_we_promise_to_run():
    statements = guide_statements()
    assert len(statements) >= 25
    assert any("HAVING ABS(u.available_points" in s for s in statements)


@pytest.mark.parametrize("index", range(len(guide_statements())))
async def test_guide_statement_runs_as_written(db, index):
    statement = guide_statements()[index]
    user, coupon = new_user(), str(uuid.uuid4())
    async with db.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            if "SET LOCAL request.jwt.claims.sub" in statement or "SET LOCAL ROLE" in statement:
                await conn.execute(fill(statement, user, coupon))
            elif EXPECTED_TO_FAIL.search(statement):
                await conn.execute("SET LOCAL ROLE authenticated")
                with pytest.raises(Exception, match="permission denied|row-level security"):
                    await conn.execute(fill(statement, user, coupon))
            else:
                await conn.execute(fill(statement, user, coupon))
        finally:
            await transaction.rollback()


async def test_a_signed_in_role_sees_only_its_own_rows(db):
    mine, theirs = new_user(), new_user()
    async with db.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            for user in (mine, theirs):
                await conn.execute(
                    "INSERT INTO points_events (user_id, event_type, event_time, points_delta, validation_status) "
                    "VALUES ($1, 'habit_completed', now(), 10, 'validated')", user)
                await conn.execute("SELECT refresh_user_points_cache($1)", user)
            await conn.execute("SET LOCAL ROLE authenticated")
            await conn.execute(f"SET LOCAL request.jwt.claims.sub = '{mine}'")
            seen = {r["user_id"] for r in await conn.fetch(
                "SELECT user_id FROM points_events WHERE user_id = ANY($1::text[])", [mine, theirs])}
            cached = {r["user_id"] for r in await conn.fetch(
                "SELECT user_id FROM user_points_cache WHERE user_id = ANY($1::text[])", [mine, theirs])}
            assert seen == cached == {mine}
        finally:
            await transaction.rollback()


async def test_refresh_repairs_a_cache_that_drifted_from_the_ledger(db):
    user = new_user()
    async with db.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(
                "INSERT INTO points_events (user_id, event_type, event_time, points_delta, validation_status) "
                "VALUES ($1, 'habit_completed', now(), 10, 'validated')", user)
            await conn.execute("SELECT refresh_user_points_cache($1)", user)
            await conn.execute("UPDATE user_points_cache SET available_points = 999 WHERE user_id = $1", user)
            assert [r["user_id"] for r in await conn.fetch(BALANCE_DISCREPANCIES)].count(user) == 1
            await conn.execute("SELECT refresh_user_points_cache($1)", user)
            assert user not in [r["user_id"] for r in await conn.fetch(BALANCE_DISCREPANCIES)]
        finally:
            await transaction.rollback()
