"""Challenges and attested device keys in PostgreSQL, shared by every gateway process."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import asyncpg

from services.ingest.attestation.apple import AttestedKey

CHALLENGE_TTL = timedelta(minutes=5)


# An app needs one challenge per key it attests; a few spare cover retries. More is someone filling the table.
LIVE_CHALLENGES_PER_USER = 10


async def issue_challenge(pool: asyncpg.Pool, user_id: str, now: datetime) -> tuple[bytes, datetime] | None:
    """A new challenge; None when the user already holds as many live ones as anyone could need."""
    challenge, expires_at = secrets.token_bytes(32), now + CHALLENGE_TTL
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 13))", user_id)
        live = await conn.fetchval("SELECT count(*) FROM attestation_challenges WHERE user_id = $1 AND expires_at > $2",
                                   user_id, now)
        if live >= LIVE_CHALLENGES_PER_USER:
            return None
        await conn.execute("INSERT INTO attestation_challenges (challenge, user_id, expires_at) VALUES ($1, $2, $3)",
                           challenge, user_id, expires_at)
    return challenge, expires_at


async def delete_expired_challenges(pool: asyncpg.Pool, now: datetime) -> int:
    result = await pool.execute("DELETE FROM attestation_challenges WHERE expires_at < $1", now)
    return int(result.split()[-1])


async def consume_challenge(pool: asyncpg.Pool, user_id: str, challenge: bytes, now: datetime) -> bool:
    """True once for a live challenge issued to this user; a second use finds nothing."""
    row = await pool.fetchval(
        "DELETE FROM attestation_challenges WHERE challenge = $1 AND user_id = $2 AND expires_at > $3 RETURNING 1",
        challenge, user_id, now)
    return row is not None


async def register_key(pool: asyncpg.Pool, user_id: str, key: AttestedKey) -> bool:
    """Store an attested key; False if that key id is already registered (an attestation is once per key)."""
    result = await pool.execute(
        "INSERT INTO device_keys (key_id, user_id, platform, environment, public_key, receipt) "
        "VALUES ($1, $2, 'app_attest', $3, $4, $5) ON CONFLICT (key_id) DO NOTHING",
        key.key_id, user_id, key.environment, key.public_key, key.receipt)
    return result.endswith("1")


async def device_key(pool: asyncpg.Pool, key_id: bytes) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT user_id, public_key, counter FROM device_keys WHERE key_id = $1", key_id)


async def advance_counter(pool: asyncpg.Pool, key_id: bytes, counter: int) -> bool:
    """Move the key's counter forward; False when another request already used this or a later one."""
    result = await pool.execute(
        "UPDATE device_keys SET counter = $2, last_used_at = now() WHERE key_id = $1 AND counter < $2",
        key_id, counter)
    return result.endswith("1")
