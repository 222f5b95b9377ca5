"""The deployment guide's post-deployment checks, run on a timer and exported as gauges.

Prometheus alerts (deploy/prometheus/alerts.yml) page on these; PostgreSQL is where the read models
live, so the projector, which owns them, is the one that measures them.
"""
from __future__ import annotations

import asyncio
import logging

import asyncpg
from prometheus_client import Gauge

from shared.guide_queries import BALANCE_DISCREPANCIES, STALE_PENDING, UNHASHED_COUPONS

log = logging.getLogger("points.projector")

CHECKS: dict[str, tuple[str, str]] = {
    "points_cache_discrepancy_users": (
        "Users whose cached balance differs from their ledger (the guide's rollback trigger)",
        f"SELECT count(*) FROM ({BALANCE_DISCREPANCIES.strip().rstrip(';')}) AS discrepancies"),
    "points_duplicate_coupon_hashes": (
        "Coupon code hashes held by more than one coupon (the guide's other rollback trigger)",
        "SELECT count(*) FROM (SELECT code_hash FROM coupons GROUP BY code_hash HAVING count(*) > 1) AS dups"),
    "points_unhashed_coupons": ("Coupons stored without a code hash", UNHASHED_COUPONS),
    "points_stale_pending_events": ("Events still pending after an hour", STALE_PENDING),
    "points_review_queue_depth": (
        "Events waiting for an admin's verdict",
        "SELECT count(*) FROM points_events WHERE validation_status = 'pending_review'"),
    "points_fraud_insights_last_hour": (
        "Fraud insights raised in the last hour",
        "SELECT count(*) FROM fraud_insights WHERE created_at >= now() - interval '1 hour'"),
}
GAUGES = {name: Gauge(name, help_text) for name, (help_text, _) in CHECKS.items()}
CHECKED_AT = Gauge("points_health_checked_timestamp_seconds", "When the read-model checks last ran")


async def measure(pool: asyncpg.Pool) -> dict[str, int]:
    async with pool.acquire() as conn:
        return {name: await conn.fetchval(sql) for name, (_, sql) in CHECKS.items()}


async def keep_measuring(pool: asyncpg.Pool, every: float) -> None:
    while True:
        try:
            for name, value in (await measure(pool)).items():
                GAUGES[name].set(value)
            CHECKED_AT.set_to_current_time()
        except Exception as exc:  # a database blip must not end the checks; the stale timestamp shows it
            log.warning("read-model checks failed", extra={"error_message": f"{type(exc).__name__}: {exc}"})
        await asyncio.sleep(every)
