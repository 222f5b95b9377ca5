"""The deployment guide's SQL runs as written against our read models.

Every ```sql block of docs/points-system-deployment-guide.md is executed statement by statement,
with its [PLACEHOLDERS] filled in, inside a transaction that is rolled back.
"""
from __future__ import annotations

import re
import uuid
from contextlib import asynccontextmanager

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


class World:
    """One user's worth of everything the guide's queries look at, made inside the test's transaction:
    a validated, a rejected and a stale pending event, an issued coupon of a template, an expired
    nonce and a fraud insight."""

    def __init__(self):
        self.user, self.template, self.coupon = new_user(), uuid.uuid4(), uuid.uuid4()
        self.stale = uuid.uuid4()

    async def make(self, conn) -> None:
        await conn.execute("INSERT INTO coupon_templates (template_id, name, partner, points_cost) "
                           "VALUES ($1, 'Guide coupon', 'Guide', 100)", self.template)
        for status, created in (("validated", "now()"), ("rejected", "now()"), ("pending", "now() - interval '2 hours'")):
            await conn.execute(
                "INSERT INTO points_events (id, user_id, event_type, event_time, points_delta, validation_status, "
                f"trust_score, created_at) VALUES ($1, $2, 'habit_completed', now(), 150, $3, 70, {created})",
                self.stale if status == "pending" else uuid.uuid4(), self.user, status)
        await conn.execute(
            "INSERT INTO coupons (coupon_id, user_id, template_id, code_hash, status, issued_points_cost, issued_at, "
            "expires_at) VALUES ($1, $2, $3, $4, 'issued', 100, now(), now() + interval '30 days')",
            self.coupon, self.user, self.template, uuid.uuid4().hex)
        await conn.execute(
            "INSERT INTO points_events (user_id, event_type, event_time, points_delta, validation_status, "
            "related_entity_type, related_entity_id) VALUES ($1, 'coupon_redemption', now(), -100, 'validated', "
            "'coupon', $2)", self.user, str(self.coupon))
        await conn.execute("SELECT refresh_user_points_cache($1)", self.user)
        await conn.execute(
            "INSERT INTO used_nonces (user_id, nonce, event_id, expires_at, body_hash, record) "
            "VALUES ($1, 'old-nonce', $2, now() - interval '1 hour', 'h', '{}')", self.user, uuid.uuid4())
        await conn.execute(
            "INSERT INTO fraud_insights (id, user_id, insight_type, severity, score) "
            "VALUES ($1, $2, 'rapid_fire_events', 'high', 20)", uuid.uuid4(), self.user)

    def fill(self, statement: str) -> str:
        return fill(statement, self.user, str(self.coupon))


@asynccontextmanager
async def rolled_back(db, *worlds: World):
    """A connection in a transaction that is rolled back afterwards, with the worlds made in it."""
    async with db.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            for world in worlds:
                await world.make(conn)
            yield conn
        finally:
            await transaction.rollback()


def balance(conn, user):
    return conn.fetchval("SELECT available_points FROM user_points_cache WHERE user_id = $1", user)


# What each of the guide's standalone statements must return for the world above (or do to it):
# keyed by a fragment only that statement has. The statements that only make sense in sequence
# (the RLS check, the manual award, the revoke with refund) are tested as sequences below.
EXPECTED = {
    "table_name LIKE '%points%'": lambda w, rows, conn: {r["table_name"] for r in rows} >= {
        "points_events", "user_points_cache", "coupons", "coupon_templates", "fraud_insights", "used_nonces"},
    "SELECT tablename, rowsecurity": lambda w, rows, conn: len(rows) == 4 and all(r["rowsecurity"] for r in rows),
    "COUNT(*) as policy_count": lambda w, rows, conn: {
        "points_events", "user_points_cache", "coupons"} <= {r["tablename"] for r in rows if r["policy_count"] >= 1},
    "THEN 'SECURE' ELSE 'INSECURE'": lambda w, rows, conn: {r["security"] for r in rows} == {"SECURE"}
        and w.coupon in {r["coupon_id"] for r in rows},
    "FROM used_nonces WHERE expires_at < now()": lambda w, rows, conn: rows[0]["count"] >= 1,
    "EXPLAIN ANALYZE": lambda w, rows, conn: "Index" in "\n".join(r[0] for r in rows),
    "FROM pg_stat_user_indexes": lambda w, rows, conn: {"points_events", "coupons"} <= {r["tablename"] for r in rows},
    "ROUND(AVG(trust_score), 2)": lambda w, rows, conn: {"validated", "rejected"} <= {r["validation_status"] for r in rows},
    "as reject_rate": lambda w, rows, conn: any(r["event_type"] == "habit_completed" and r["rejected"] >= 1
                                                and 0 < r["reject_rate"] <= 100 for r in rows),
    "SUM(issued_points_cost) as total_points": lambda w, rows, conn: any(r["status"] == "issued"
                                                                        and r["total_points"] >= 100 for r in rows),
    "as total_events": lambda w, rows, conn: rows[0]["total_events"] >= 4 and rows[0]["unique_users"] >= 1,
    "HAVING ABS(u.available_points": lambda w, rows, conn: w.user not in {r["user_id"] for r in rows},
    "WHERE code_hash IS NULL": lambda w, rows, conn: rows[0]["count"] == 0,
    "SELECT COUNT(*) FROM points_events WHERE validation_status = 'pending'": lambda w, rows, conn: rows[0]["count"] >= 1,
    "SET validation_status = 'pending_review' WHERE validation_status = 'pending'": None,  # checked below
    "UPDATE coupon_templates SET is_active = false": None,  # checked below
    "ORDER BY created_at LIMIT 10": lambda w, rows, conn: w.stale in {r["id"] for r in rows}
        or len(rows) == 10,
    "as actual FROM user_points_cache": lambda w, rows, conn: [(r["cached"], r["actual"]) for r in rows] == [(50, 50)],
    "SELECT refresh_user_points_cache('": lambda w, rows, conn: len(rows) == 1,
    "refresh_user_points_cache(user_id) FROM user_points_cache": lambda w, rows, conn: w.user in {r["user_id"] for r in rows},
    "AVG(score) as avg_score": lambda w, rows, conn: "rapid_fire_events" in {r["insight_type"] for r in rows},
    "SELECT * FROM user_points_cache WHERE user_id": lambda w, rows, conn: [r["available_points"] for r in rows] == [50],
    "ORDER BY created_at DESC LIMIT 10": lambda w, rows, conn: len(rows) == 4 and {r["user_id"] for r in rows} == {w.user},
    "validation_status IN ('pending', 'pending_review')": lambda w, rows, conn: rows[0]["count"] == 1,
    "SELECT event_time, event_type, points_delta, validation_status": lambda w, rows, conn: len(rows) == 4,
}
SEQUENCES = ("SET LOCAL", "SELECT * FROM points_events;", "SELECT * FROM user_points_cache;", "999999",
             "'admin_award'", "SET status = 'revoked'", "'coupon_refund'")


def expectation(statement: str):
    return [check for fragment, check in EXPECTED.items() if fragment in " ".join(statement.split())]


def the_statement(fragment: str) -> str:
    """The one statement of the guide that says this (whitespace aside)."""
    [statement] = [s for s in guide_statements() if fragment in " ".join(s.split())]
    return statement


def standalone() -> list[str]:
    """The statements that stand alone; the others run in their sequences below."""
    return [s for s in guide_statements() if not any(marker in s for marker in SEQUENCES)]


def test_every_statement_of_the_guide_has_an_expected_outcome():
    assert len(standalone()) >= 25
    for statement in standalone():
        assert len(expectation(statement)) == 1, statement


@pytest.mark.parametrize("index", range(len(standalone())))
async def test_guide_statement_returns_what_it_should_for_a_known_user(db, index):
    statement = standalone()[index]
    [check] = expectation(statement)
    world = World()
    async with rolled_back(db, world) as conn:
        if check is None:
            return  # an UPDATE of the rollback procedure: see its own test
        if statement.startswith("EXPLAIN"):
            # A small test table is cheaper to scan than to look up; the question is whether the
            # user's history query can use an index at all.
            await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch(world.fill(statement))
        assert check(world, rows, conn), [dict(r) for r in rows][:5]


async def test_the_guides_rls_check_runs_as_one_transaction_and_a_user_cannot_write_their_balance(db):
    statements = [s for s in guide_statements() if "SET LOCAL" in s or s in (
        "SELECT * FROM points_events;", "SELECT * FROM user_points_cache;") or "999999" in s]
    assert len(statements) == 5
    world, other = World(), World()
    async with rolled_back(db, world, other) as conn:
        results = []
        for statement in statements[:4]:
            results.append(await conn.fetch(statement.replace("'test-user-uuid'", f"'{world.user}'")))
        events, cache = results[2], results[3]
        assert {r["user_id"] for r in events} == {r["user_id"] for r in cache} == {world.user}
        assert len(events) == 4
        with pytest.raises(Exception, match="permission denied|row-level security"):
            await conn.execute(statements[4].replace("'test-user-uuid'", f"'{world.user}'"))


def sequence(start: str, length: int) -> list[str]:
    statements = guide_statements()
    first = next(i for i, s in enumerate(statements) if start in s)
    return statements[first:first + length]


async def test_the_guides_manual_award_credits_the_user_once_refreshed(db):
    award, refresh = sequence("'admin_award'", 2)
    world = World()
    async with rolled_back(db, world) as conn:
        assert await conn.execute(world.fill(award)) == "INSERT 0 1"
        await conn.execute(world.fill(refresh))
        assert await balance(conn, world.user) == 150
        assert await conn.fetchval("SELECT validated_by FROM points_events WHERE user_id = $1 AND "
                                   "event_type = 'admin_award'", world.user) == "admin@example.com"


async def test_the_guides_revoke_with_refund_makes_the_coupon_unusable_and_gives_the_points_back(db):
    revoke, refund, refresh = sequence("SET status = 'revoked'", 3)
    world = World()
    async with rolled_back(db, world) as conn:
        assert await conn.execute(world.fill(revoke)) == "UPDATE 1"
        assert await conn.execute(world.fill(refund)) == "INSERT 0 1"
        await conn.execute(world.fill(refresh))
        assert await conn.fetchval("SELECT status FROM coupons WHERE coupon_id = $1", world.coupon) == "revoked"
        assert await balance(conn, world.user) == 150


async def test_the_guides_rollback_holds_every_pending_event_and_disables_every_template(db):
    hold = the_statement("SET validation_status = 'pending_review' WHERE validation_status = 'pending'")
    disable = the_statement("UPDATE coupon_templates SET is_active = false")
    world = World()
    async with rolled_back(db, world) as conn:
        held = int((await conn.execute(hold)).split()[-1])
        disabled = int((await conn.execute(disable)).split()[-1])
        assert held >= 1 and disabled >= 1
        assert await conn.fetchval("SELECT validation_status FROM points_events WHERE id = $1",
                                   world.stale) == "pending_review"
        assert await conn.fetchval("SELECT count(*) FROM points_events WHERE validation_status = 'pending'") == 0
        assert await conn.fetchval("SELECT count(*) FROM coupon_templates WHERE is_active") == 0


async def test_a_signed_in_role_sees_only_its_own_rows(db):
    mine, theirs = new_user(), new_user()
    async with rolled_back(db) as conn:
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


async def test_refresh_repairs_a_cache_that_drifted_from_the_ledger(db):
    user = new_user()
    async with rolled_back(db) as conn:
        await conn.execute(
            "INSERT INTO points_events (user_id, event_type, event_time, points_delta, validation_status) "
            "VALUES ($1, 'habit_completed', now(), 10, 'validated')", user)
        await conn.execute("SELECT refresh_user_points_cache($1)", user)
        await conn.execute("UPDATE user_points_cache SET available_points = 999 WHERE user_id = $1", user)
        assert [r["user_id"] for r in await conn.fetch(BALANCE_DISCREPANCIES)].count(user) == 1
        await conn.execute("SELECT refresh_user_points_cache($1)", user)
        assert user not in [r["user_id"] for r in await conn.fetch(BALANCE_DISCREPANCIES)]


async def test_the_projectors_refresh_of_many_users_gives_each_the_sums_the_guides_one_user_refresh_does(db):
    earner, spender, newcomer = new_user(), new_user(), new_user()
    rows = [(earner, "habit_completed", 10, "validated"), (earner, "habit_completed", 7, "pending"),
            (earner, "habit_completed", 5, "pending_review"), (earner, "habit_completed", 3, "rejected"),
            (spender, "habit_completed", 50, "validated"), (spender, "coupon_redemption", -30, "validated"),
            (spender, "coupon_refund", 30, "validated"), (spender, "coupon_redemption", -20, "validated")]
    columns = "available_points, pending_points, lifetime_earned, lifetime_spent"
    async with rolled_back(db) as conn:
        for user, kind, points, status in rows:
            await conn.execute(
                "INSERT INTO points_events (user_id, event_type, event_time, points_delta, validation_status) "
                "VALUES ($1, $2, now(), $3, $4)", user, kind, points, status)
        await conn.execute("SELECT refresh_user_points_caches($1::text[])", [spender, newcomer, earner, earner])
        together = {r["user_id"]: tuple(r)[1:] for r in await conn.fetch(
            f"SELECT user_id, {columns} FROM user_points_cache WHERE user_id = ANY($1::text[])",
            [earner, spender, newcomer])}
        assert together == {earner: (10, 12, 10, 0), spender: (30, 0, 50, 20), newcomer: (0, 0, 0, 0)}
        for user in (earner, spender, newcomer):
            await conn.execute("SELECT refresh_user_points_cache($1)", user)
        alone = {r["user_id"]: tuple(r)[1:] for r in await conn.fetch(
            f"SELECT user_id, {columns} FROM user_points_cache WHERE user_id = ANY($1::text[])",
            [earner, spender, newcomer])}
        assert alone == together
