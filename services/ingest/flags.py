"""The kill switch and canary rollout: stored in PostgreSQL, cached by every gateway for a moment."""
from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.ingest.problems import Problem

log = logging.getLogger("points.ingest")


@dataclass(frozen=True)
class Flags:
    points_system_enabled: bool = True
    rollout_percent: int = 100
    updated_by: str = "system"
    updated_at: datetime | None = None


def rollout_bucket(user_id: str) -> int:
    """A stable 0..99 bucket per user, the same in every process and every release."""
    return int.from_bytes(hashlib.sha256(user_id.encode()).digest()[:8], "big") % 100


def check_write_allowed(flags: Flags, user_id: str) -> None:
    if not flags.points_system_enabled:
        raise Problem(503, "points-disabled", "The points system is switched off for now.",
                      title="Service Unavailable", headers={"Retry-After": "60"})
    if rollout_bucket(user_id) >= flags.rollout_percent:
        raise Problem(403, "not-in-rollout", "The points system is not yet enabled for this account.")


async def load(pool: asyncpg.Pool) -> Flags:
    row = await pool.fetchrow(
        "SELECT points_system_enabled, rollout_percent, updated_by, updated_at FROM feature_flags")
    return Flags(**dict(row)) if row else Flags()


async def save(pool: asyncpg.Pool, *, enabled: bool, rollout_percent: int, admin: str) -> Flags:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE feature_flags SET points_system_enabled = $1, rollout_percent = $2, updated_by = $3, "
            "updated_at = now() RETURNING points_system_enabled, rollout_percent, updated_by, updated_at",
            enabled, rollout_percent, admin)
        await conn.execute(
            "INSERT INTO feature_flag_changes (points_system_enabled, rollout_percent, changed_by) "
            "VALUES ($1, $2, $3)", enabled, rollout_percent, admin)
    return Flags(**dict(row))


class FlagCache:
    """Flags as this process last read them; refreshed in the background every `every` seconds."""

    def __init__(self, pool: asyncpg.Pool, every: float):
        self.pool, self.every = pool, every
        self.current = Flags()

    async def refresh(self) -> Flags:
        self.current = await load(self.pool)
        return self.current

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("could not refresh feature flags; keeping the last known ones")
            await asyncio.sleep(self.every)
