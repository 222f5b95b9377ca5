"""Challenges and attested device keys in PostgreSQL, shared by every gateway process."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import asyncpg

from services.ingest.attestation.apple import AttestedKey

CHALLENGE_TTL = timedelta(minutes=5)


async def issue_challenge(pool: asyncpg.Pool, user_id: str, now: datetime) -> tuple[bytes, datetime]:
    challenge, expires_at = secrets.token_bytes(32), now + CHALLENGE_TTL
    await pool.execute("INSERT INTO attestation_challenges (challenge, user_id, expires_at) VALUES ($1, $2, $3)",
                       challenge, user_id, expires_at)
    return challenge, expires_at


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
