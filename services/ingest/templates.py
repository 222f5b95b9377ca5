"""Coupon templates, the gateway's own table (an adapter): offer a coupon, change or withdraw one."""
from __future__ import annotations

import logging
from uuid import UUID, uuid4

import asyncpg

log = logging.getLogger("points.ingest")
COLUMNS = "template_id, name, partner, points_cost, valid_days, is_active"


async def create(pool: asyncpg.Pool, *, admin: str, name: str, partner: str, points_cost: int,
                 valid_days: int) -> asyncpg.Record:
    row = await pool.fetchrow(
        f"INSERT INTO coupon_templates (template_id, name, partner, points_cost, valid_days) "
        f"VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}", uuid4(), name, partner, points_cost, valid_days)
    log.warning("points.template.created", extra={"admin": admin, "template_id": str(row["template_id"])})
    return row


async def change(pool: asyncpg.Pool, template_id: UUID, changes: dict, *, admin: str) -> asyncpg.Record | None:
    """Apply the changes and log who made them; the new row, or None for an unknown template.
    Coupons already issued keep their terms."""
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, start=2))
    row = await pool.fetchrow(
        f"UPDATE coupon_templates SET {assignments + ', ' if assignments else ''}updated_at = now() "
        f"WHERE template_id = $1 RETURNING {COLUMNS}", template_id, *changes.values())
    if row is not None:
        log.warning("points.template.changed", extra={"admin": admin, "template_id": str(template_id),
                                                      "changes": changes})
    return row
