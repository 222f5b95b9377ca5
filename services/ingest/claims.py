"""The gateway's claim on (user, nonce) in PostgreSQL, shared by every gateway process.

One short transaction per submission, serialised per user by an advisory lock, decides whether
the request is new, a retry, a reuse of the nonce, or over the hourly limit. Only then is the
record published; the claim remembers it until Kafka acknowledges, so a retry can publish the
very same event (same event id) again, and nothing is counted twice downstream.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from services.ingest.ratelimit import WINDOW, Quota
from shared.events import EventSubmitted, utcnow


@dataclass(frozen=True)
class Claimed:
    quota: Quota


@dataclass(frozen=True)
class Duplicate:
    event: EventSubmitted
    published: bool
    claimed_at: datetime


@dataclass(frozen=True)
class NonceReused:
    pass


@dataclass(frozen=True)
class RateLimited:
    quota: Quota


Outcome = Claimed | Duplicate | NonceReused | RateLimited


async def claim(pool: asyncpg.Pool, event: EventSubmitted, *, limit: int, ttl: timedelta) -> Outcome:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", event.user_id)
        existing = await conn.fetchrow(
            "SELECT body_hash, published_at, created_at, record FROM used_nonces WHERE user_id = $1 AND nonce = $2",
            event.user_id, event.nonce,
        )
        if existing is not None:
            if existing["body_hash"] != event.body_hash:
                return NonceReused()
            return Duplicate(EventSubmitted.model_validate(existing["record"]),
                             published=existing["published_at"] is not None, claimed_at=existing["created_at"])
        window = await conn.fetchrow(
            "SELECT count(*) AS used, min(created_at) AS oldest FROM used_nonces "
            "WHERE user_id = $1 AND created_at > $2",
            event.user_id, event.received_at - WINDOW,
        )
        quota = Quota(limit=limit, used=window["used"], oldest_in_window=window["oldest"])
        if quota.exhausted:
            return RateLimited(quota)
        await conn.execute(
            "INSERT INTO used_nonces (user_id, nonce, event_id, body_hash, created_at, expires_at, record) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            event.user_id, event.nonce, event.event_id, event.body_hash, event.received_at,
            event.received_at + ttl, event.model_dump(mode="json"),
        )
        return Claimed(quota)


async def mark_published(pool: asyncpg.Pool, event: EventSubmitted) -> None:
    await pool.execute(
        "UPDATE used_nonces SET published_at = now() WHERE user_id = $1 AND nonce = $2 AND published_at IS NULL",
        event.user_id, event.nonce,
    )


async def wait_for_first_publish(pool: asyncpg.Pool, event: EventSubmitted, deadline: datetime) -> bool:
    """A copy that raced the first request waits for its publish; False if it has not come by `deadline`."""
    while utcnow() < deadline:
        published = await pool.fetchval(
            "SELECT published_at IS NOT NULL FROM used_nonces WHERE user_id = $1 AND nonce = $2",
            event.user_id, event.nonce,
        )
        if published:
            return True
        await asyncio.sleep(0.05)
    return False


async def delete_expired(pool: asyncpg.Pool, now: datetime | None = None) -> int:
    result = await pool.execute("DELETE FROM used_nonces WHERE expires_at < $1", now or utcnow())
    return int(result.split()[-1])


async def stuck_submissions(pool: asyncpg.Pool, older_than: datetime, limit: int = 500) -> list[EventSubmitted]:
    """Acknowledged events still undecided long after they were stored: to be offered to the validator again."""
    rows = await pool.fetch(
        "SELECT n.record FROM points_events p JOIN used_nonces n ON n.event_id = p.id "
        "WHERE p.validation_status = 'pending' AND p.created_at < $1 ORDER BY p.created_at LIMIT $2",
        older_than, limit)
    return [EventSubmitted.model_validate(r["record"]) for r in rows]
