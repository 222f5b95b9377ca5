"""Merchants presenting codes at the till: the code's coupon, within a limit of failed attempts.

Counting the merchant's recent failures, looking the code up and recording a failure are one step,
serialised per merchant by an advisory lock, so guesses sent in parallel cannot slip past the limit
between the count and the insert.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Limited:
    """Too many unknown codes from this merchant within the window."""


async def find_coupon(pool: asyncpg.Pool, *, merchant: str, candidate_hashes: list[str], limit: int,
                      now: datetime) -> asyncpg.Record | Limited | None:
    """The coupon (coupon_id, user_id) with one of these hashes; None (counted as a failure) if none has."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 11))", merchant)
        failures = await conn.fetchval(
            "SELECT count(*) FROM merchant_failed_attempts WHERE merchant = $1 AND attempted_at > $2",
            merchant, now - WINDOW)
        if failures >= limit:
            return Limited()
        coupon = None
        if candidate_hashes:
            coupon = await conn.fetchrow("SELECT coupon_id, user_id FROM coupons WHERE code_hash = ANY($1::text[])",
                                         candidate_hashes)
        if coupon is None:
            await conn.execute("INSERT INTO merchant_failed_attempts (merchant, attempted_at) VALUES ($1, $2)",
                               merchant, now)
        return coupon


async def delete_old_failures(pool: asyncpg.Pool, now: datetime) -> int:
    """Failures older than the window count for nothing any more."""
    result = await pool.execute("DELETE FROM merchant_failed_attempts WHERE attempted_at < $1", now - WINDOW)
    return int(result.split()[-1])
