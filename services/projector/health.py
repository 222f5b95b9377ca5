"""The deployment guide's post-deployment checks, run on a timer and exported as gauges.

Prometheus alerts (deploy/prometheus/alerts.yml) page on these; PostgreSQL is where the read models
live, so the projector, which owns them, is the one that measures them.

The guide's balance check sums the whole ledger: at 1,000 events a second it grows by 86 M rows a
day, and run every 30 s it would soon cost a core and then outlast its own timeout. So it runs over
everyone every `full_every` seconds (catching what was written past the projector, a hand-edited
row), and every `every` seconds over the users the projector wrote since (catching what the
projector itself got wrong within seconds), with the same query narrowed to those users.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import asyncpg
from prometheus_client import Gauge

from shared.guide_queries import BALANCE_DISCREPANCIES, STALE_PENDING, UNHASHED_COUPONS

log = logging.getLogger("points.projector")

CHECKS: dict[str, tuple[str, str]] = {
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
DISCREPANCY = "points_cache_discrepancy_users"
GAUGES = {name: Gauge(name, help_text) for name, (help_text, _) in CHECKS.items()}
GAUGES[DISCREPANCY] = Gauge(DISCREPANCY, "Users whose cached balance differs from their ledger "
                                         "(the guide's rollback trigger)")
CHECKED_AT = Gauge("points_health_checked_timestamp_seconds", "When the read-model checks last ran")

_GUIDE = BALANCE_DISCREPANCIES.strip().rstrip(";")
DISCREPANT = f"SELECT user_id FROM ({_GUIDE}) AS discrepancies"
# The guide's query, word for word, with the users named before it groups them.
DISCREPANT_AMONG = DISCREPANT.replace("GROUP BY", "WHERE u.user_id = ANY($1::text[])\nGROUP BY", 1)
USERS_PER_STATEMENT = 10_000


class BalanceCheck:
    """Which users' cached balance differs from their ledger, kept between passes."""

    def __init__(self) -> None:
        self.touched: set[str] = set()  # written by this projector since they were last checked
        self.discrepant: set[str] | None = None  # None until the first full pass
        self._full_running = False

    def wrote(self, users: Iterable[str]) -> None:
        self.touched.update(users)

    @property
    def count(self) -> int | None:
        return None if self.discrepant is None else len(self.discrepant)

    async def full(self, pool: asyncpg.Pool, timeout: float) -> None:
        """The guide's query over everyone. The users written meanwhile are checked after it."""
        covered, self.touched = self.touched, set()
        self._full_running = True
        try:
            rows = await pool.fetch(DISCREPANT, timeout=timeout)
        except BaseException:
            self.touched |= covered
            raise
        finally:
            self._full_running = False
        self.discrepant = {row["user_id"] for row in rows}

    async def recent(self, pool: asyncpg.Pool, timeout: float) -> None:
        """The users written since they were last checked, as of now (those written meanwhile are
        the next pass's, so a busy projector cannot keep one pass going); not while a pass over
        everyone runs, whose answer (as of when it began) would overwrite a newer one."""
        if self.discrepant is None or self._full_running:
            return
        pending, self.touched = self.touched, set()
        try:
            while pending and not self._full_running:
                users = {pending.pop() for _ in range(min(len(pending), USERS_PER_STATEMENT))}
                try:
                    rows = await pool.fetch(DISCREPANT_AMONG, list(users), timeout=timeout)
                except BaseException:
                    pending |= users
                    raise
                self.discrepant = (self.discrepant - users) | {row["user_id"] for row in rows}
        finally:
            self.touched |= pending


def _failed(check: str, exc: Exception) -> None:
    log.warning("read-model check failed", extra={"check": check, "error_message": f"{type(exc).__name__}: {exc}"})


async def measure(pool: asyncpg.Pool, timeout: float) -> dict[str, int | None]:
    """Each check on its own, so one slow or failing query leaves the others' gauges current."""
    results: dict[str, int | None] = {}
    for name, (_, sql) in CHECKS.items():
        try:
            results[name] = await pool.fetchval(sql, timeout=timeout)
        except Exception as exc:
            _failed(name, exc)
            results[name] = None
    return results


async def keep_measuring(pool: asyncpg.Pool, balances: BalanceCheck, *, every: float, full_every: float) -> None:
    full = asyncio.create_task(_keep_checking_everyone(pool, balances, full_every))
    try:
        while True:
            timeout = max(every, 5.0)
            results = await measure(pool, timeout)
            try:
                await balances.recent(pool, timeout)
            except Exception as exc:
                _failed(DISCREPANCY, exc)
                results[DISCREPANCY] = None
            else:
                results[DISCREPANCY] = balances.count
            for name, value in results.items():
                if value is not None:
                    GAUGES[name].set(value)
            if all(value is not None for value in results.values()):
                CHECKED_AT.set_to_current_time()  # stale when any check fails, which ReadModelChecksStale reports
            await asyncio.sleep(every)
    finally:
        full.cancel()


async def _keep_checking_everyone(pool: asyncpg.Pool, balances: BalanceCheck, every: float) -> None:
    while True:
        try:
            # As long as it takes, up to the next pass: on a large ledger that is minutes.
            await balances.full(pool, timeout=max(every, 60.0))
        except Exception as exc:
            _failed(f"{DISCREPANCY} (everyone)", exc)
            await asyncio.sleep(min(every, 60.0))  # soon again: until one pass ends there is no figure
            continue
        await asyncio.sleep(every)
