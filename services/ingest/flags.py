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
    # New redemptions only (an alert's disable_redemptions): coupons already issued still work at the till.
    redemptions_enabled: bool = True
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


def check_redemptions_allowed(flags: Flags) -> None:
    if not flags.redemptions_enabled:
        raise Problem(503, "redemptions-disabled", "New redemptions are switched off for now; coupons already "
                      "issued still work.", title="Service Unavailable", headers={"Retry-After": "60"})


_COLUMNS = "points_system_enabled, rollout_percent, redemptions_enabled, updated_by, updated_at"


async def load(pool: asyncpg.Pool) -> Flags:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM feature_flags")
    return Flags(**dict(row)) if row else Flags()


async def save(pool: asyncpg.Pool, *, admin: str, enabled: bool | None = None, rollout_percent: int | None = None,
               redemptions_enabled: bool | None = None) -> Flags:
    """Change what is given (None keeps it), recording who: an admin, or an alert by name."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE feature_flags SET points_system_enabled = coalesce($1, points_system_enabled), "
            "rollout_percent = coalesce($2, rollout_percent), redemptions_enabled = coalesce($3, redemptions_enabled), "
            f"updated_by = $4, updated_at = now() RETURNING {_COLUMNS}",
            enabled, rollout_percent, redemptions_enabled, admin)
        await conn.execute(
            "INSERT INTO feature_flag_changes (points_system_enabled, rollout_percent, redemptions_enabled, changed_by) "
            "VALUES ($1, $2, $3, $4)", row["points_system_enabled"], row["rollout_percent"],
            row["redemptions_enabled"], admin)
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
