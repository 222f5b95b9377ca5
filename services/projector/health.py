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


async def measure(pool: asyncpg.Pool, timeout: float) -> dict[str, int | None]:
    """Each check on its own, so one slow or failing query leaves the others' gauges current."""
    results: dict[str, int | None] = {}
    for name, (_, sql) in CHECKS.items():
        try:
            results[name] = await pool.fetchval(sql, timeout=timeout)
        except Exception as exc:
            log.warning("read-model check failed", extra={"check": name, "error_message": f"{type(exc).__name__}: {exc}"})
            results[name] = None
    return results


async def keep_measuring(pool: asyncpg.Pool, every: float) -> None:
    while True:
        results = await measure(pool, timeout=max(every, 5.0))
        for name, value in results.items():
            if value is not None:
                GAUGES[name].set(value)
        if all(value is not None for value in results.values()):
            CHECKED_AT.set_to_current_time()  # stale when any check fails, which ReadModelChecksStale reports
        await asyncio.sleep(every)
