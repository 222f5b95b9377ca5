"""Queries on the PostgreSQL read models: a user's own, scoped by row-level security; an admin's, across users."""
from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


@asynccontextmanager
async def as_user(pool: asyncpg.Pool, user_id: str):
    """A read-only transaction in which PostgreSQL itself shows only `user_id`'s rows."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute("SET LOCAL ROLE authenticated")
        await conn.execute("SELECT set_config('request.jwt.claims.sub', $1, true)", user_id)
        yield conn


async def event_by_id(pool: asyncpg.Pool, user_id: str, event_id: UUID) -> asyncpg.Record | None:
    async with as_user(pool, user_id) as conn:
        return await conn.fetchrow(
            "SELECT id, event_type, event_time, validation_status, points_delta, trust_score, reasons "
            "FROM points_events WHERE id = $1",
            event_id,
        )


async def balance(pool: asyncpg.Pool, user_id: str) -> asyncpg.Record | None:
    async with as_user(pool, user_id) as conn:
        return await conn.fetchrow(
            "SELECT available_points, pending_points, lifetime_earned, lifetime_spent "
            "FROM user_points_cache WHERE user_id = $1",
            user_id,
        )


@dataclass(frozen=True)
class HeldFilter:
    """Which held events: of one user, with one reason, of one event type, held since before a time."""

    user_id: str | None = None
    reason: str | None = None
    event_type: str | None = None
    before: datetime | None = None

    def where(self, first: int) -> tuple[str, list]:
        """The WHERE clause with its parameters numbered from `first`, and their values."""
        n = [f"${i}" for i in range(first, first + 4)]
        return (f"validation_status = 'pending_review' AND ({n[0]}::text IS NULL OR user_id = {n[0]}) "
                f"AND ({n[1]}::text IS NULL OR {n[1]} = ANY(reasons)) "
                f"AND ({n[2]}::text IS NULL OR event_type = {n[2]}) "
                f"AND ({n[3]}::timestamptz IS NULL OR created_at < {n[3]})",
                [self.user_id, self.reason, self.event_type, self.before])


async def review_queue(pool: asyncpg.Pool, *, limit: int, held: HeldFilter,
                       after: tuple[datetime, UUID] | None) -> list[asyncpg.Record]:
    """Held events, oldest first, after the (created_at, id) of the last one a previous page showed."""
    where, values = held.where(4)
    return await pool.fetch(
        "SELECT id, user_id, event_type, event_time, points_delta, trust_score, reasons, created_at "
        f"FROM points_events WHERE {where} AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) "
        "ORDER BY created_at, id LIMIT $1", limit, after and after[0], after and after[1], *values)


async def review_queue_by_user(pool: asyncpg.Pool, *, limit: int, held: HeldFilter) -> list[asyncpg.Record]:
    """Held events grouped by user, the users with most held first: how many, since when, for what."""
    where, values = held.where(2)
    return await pool.fetch(
        "SELECT user_id, count(*)::int AS held, min(created_at) AS oldest, sum(points_delta)::bigint AS points, "
        "(SELECT coalesce(array_agg(DISTINCT r ORDER BY r), '{}') FROM points_events q, unnest(q.reasons) r "
        " WHERE q.user_id = p.user_id AND q.validation_status = 'pending_review') AS reasons "
        f"FROM points_events p WHERE {where} "
        "GROUP BY user_id ORDER BY count(*) DESC, min(created_at), user_id LIMIT $1", limit, *values)


async def held_events(pool: asyncpg.Pool, *, event_ids: list[UUID] | None, user_id: str | None) -> list[asyncpg.Record]:
    """The named events (any status, for the verdict's outcome), or every held event of one user."""
    if event_ids is not None:
        return await pool.fetch("SELECT id, user_id, validation_status FROM points_events WHERE id = ANY($1::uuid[])",
                                event_ids)
    return await pool.fetch("SELECT id, user_id, validation_status FROM points_events "
                            "WHERE user_id = $1 AND validation_status = 'pending_review' ORDER BY created_at, id",
                            user_id)


async def history(pool: asyncpg.Pool, user_id: str, limit: int,
                  after: tuple[datetime, UUID] | None) -> list[asyncpg.Record]:
    """Newest first; `after` is the (event_time, id) of the last item of the previous page."""
    async with as_user(pool, user_id) as conn:
        if after is None:
            return await conn.fetch(
                "SELECT id, event_type, event_time, points_delta, validation_status, trust_score "
                "FROM points_events WHERE user_id = $1 ORDER BY event_time DESC, id DESC LIMIT $2",
                user_id, limit,
            )
        return await conn.fetch(
            "SELECT id, event_type, event_time, points_delta, validation_status, trust_score "
            "FROM points_events WHERE user_id = $1 AND (event_time, id) < ($2, $3) "
            "ORDER BY event_time DESC, id DESC LIMIT $4",
            user_id, after[0], after[1], limit,
        )


# -- an admin's reads, across users --------------------------------------------------------------
async def event_status(pool: asyncpg.Pool, event_id: UUID) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT user_id, validation_status FROM points_events WHERE id = $1", event_id)


async def pending_events(pool: asyncpg.Pool, user_ids: list[str] | None) -> list[asyncpg.Record]:
    """Events not decided yet, of these users or of everyone."""
    return await pool.fetch(
        "SELECT id, user_id, event_type, event_time, points_delta, proof_type FROM points_events "
        "WHERE validation_status = 'pending' AND ($1::text[] IS NULL OR user_id = ANY($1::text[]))", user_ids)


async def admin_history(pool: asyncpg.Pool, user_id: str, limit: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, event_type, event_time, points_delta, validation_status, trust_score, reasons, validated_by, "
        "review_note FROM points_events WHERE user_id = $1 ORDER BY event_time DESC, id DESC LIMIT $2",
        user_id, limit)


async def fraud_insights(pool: asyncpg.Pool, severity: str | None, limit: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, user_id, event_id, insight_type, severity, score, evidence, created_at FROM fraud_insights "
        "WHERE ($1::text IS NULL OR severity = $1) ORDER BY created_at DESC LIMIT $2", severity, limit)


async def activity(pool: asyncpg.Pool, since: datetime, system_event_types: list[str]) -> tuple[list, list, int]:
    """Per hour since `since`: app events by decision and fraud insights by severity; the queue's depth."""
    async with pool.acquire() as conn:
        decided = await conn.fetch(
            "SELECT date_trunc('hour', created_at, 'UTC') AS hour, validation_status, count(*)::int AS n "
            "FROM points_events WHERE created_at >= $1 AND NOT (event_type = ANY($2::text[])) GROUP BY 1, 2",
            since, system_event_types)
        raised = await conn.fetch(
            "SELECT date_trunc('hour', created_at, 'UTC') AS hour, severity, count(*)::int AS n FROM fraud_insights "
            "WHERE created_at >= $1 GROUP BY 1, 2", since)
        depth = await conn.fetchval("SELECT count(*) FROM points_events WHERE validation_status = 'pending_review'")
    return decided, raised, depth


# -- coupons --------------------------------------------------------------------------------------
async def template_terms(pool: asyncpg.Pool, template_id: UUID) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT points_cost, valid_days, is_active FROM coupon_templates WHERE template_id = $1",
                               template_id)


async def active_templates(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT template_id, name, partner, points_cost, valid_days, is_active "
                            "FROM coupon_templates WHERE is_active ORDER BY points_cost, name")


async def coupon_owner(pool: asyncpg.Pool, coupon_id: UUID) -> str | None:
    return await pool.fetchval("SELECT user_id FROM coupons WHERE coupon_id = $1", coupon_id)


async def coupons_of(pool: asyncpg.Pool, user_id: str) -> list[asyncpg.Record]:
    async with as_user(pool, user_id) as conn:
        return await conn.fetch(
            "SELECT coupon_id, template_id, status, issued_points_cost, issued_at, expires_at FROM coupons "
            "WHERE user_id = $1 ORDER BY issued_at DESC", user_id)


async def command_answer(pool: asyncpg.Pool, command_id: UUID, user_id: str) -> asyncpg.Record | None:
    """The redeemer's answer to one of this user's commands, once projected."""
    return await pool.fetchrow("SELECT outcome, detail FROM command_answers WHERE command_id = $1 AND user_id = $2",
                               command_id, user_id)


async def answers(pool: asyncpg.Pool) -> bool:
    """PostgreSQL answers, within two seconds."""
    return await pool.fetchval("SELECT true", timeout=2)
