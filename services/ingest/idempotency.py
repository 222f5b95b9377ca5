"""Idempotency-Key claims in PostgreSQL: one command per key, and the same answer for every retry."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import asyncpg


@dataclass(frozen=True)
class Fresh:
    command_id: UUID


@dataclass(frozen=True)
class Answered:
    command_id: UUID
    status_code: int
    response: dict


@dataclass(frozen=True)
class InFlight:
    command_id: UUID
    since: datetime


@dataclass(frozen=True)
class KeyReused:
    pass


Claim = Fresh | Answered | InFlight | KeyReused


async def claim(pool: asyncpg.Pool, *, scope: str, key: str, request_hash: str, ttl: timedelta,
                now: datetime) -> Claim:
    async with pool.acquire() as conn, conn.transaction():
        command_id = uuid4()
        inserted = await conn.fetchval(
            "INSERT INTO idempotency_keys (scope, key, request_hash, command_id, created_at, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, key) DO NOTHING RETURNING command_id",
            scope, key, request_hash, command_id, now, now + ttl)
        if inserted is not None:
            return Fresh(inserted)
        row = await conn.fetchrow(
            "SELECT request_hash, command_id, status_code, response, created_at FROM idempotency_keys "
            "WHERE scope = $1 AND key = $2 FOR UPDATE", scope, key)
    if row["request_hash"] != request_hash:
        return KeyReused()
    if row["status_code"] is not None:
        return Answered(row["command_id"], row["status_code"], row["response"])
    return InFlight(row["command_id"], row["created_at"])


async def answer_of(pool: asyncpg.Pool, *, scope: str, command_id: UUID) -> Answered | InFlight | None:
    """What a key's request came to, looked up by the command it named; None when there is no such claim."""
    row = await pool.fetchrow("SELECT status_code, response, created_at FROM idempotency_keys "
                              "WHERE scope = $1 AND command_id = $2", scope, command_id)
    if row is None:
        return None
    if row["status_code"] is None:
        return InFlight(command_id, row["created_at"])
    return Answered(command_id, row["status_code"], row["response"])


async def record_answer(pool: asyncpg.Pool, *, scope: str, key: str, status_code: int, response: dict) -> None:
    await pool.execute(
        "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE scope = $1 AND key = $2",
        scope, key, status_code, response)


async def delete_expired(pool: asyncpg.Pool, now: datetime) -> int:
    result = await pool.execute("DELETE FROM idempotency_keys WHERE expires_at < $1", now)
    return int(result.split()[-1])
