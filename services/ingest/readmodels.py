"""Queries on the PostgreSQL read models, always scoped to the asking user by row-level security."""
from __future__ import annotations

from contextlib import asynccontextmanager
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


async def review_queue(pool: asyncpg.Pool, *, limit: int, user_id: str | None, reason: str | None,
                       after: tuple[datetime, UUID] | None) -> list[asyncpg.Record]:
    """Held events, oldest first, after the (created_at, id) of the last one a previous page showed."""
    return await pool.fetch(
        "SELECT id, user_id, event_type, event_time, points_delta, trust_score, reasons, created_at "
        "FROM points_events WHERE validation_status = 'pending_review' "
        "AND ($2::text IS NULL OR user_id = $2) AND ($3::text IS NULL OR $3 = ANY(reasons)) "
        "AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5)) "
        "ORDER BY created_at, id LIMIT $1", limit, user_id, reason, after and after[0], after and after[1])


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
