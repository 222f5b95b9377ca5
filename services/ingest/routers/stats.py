"""Hourly figures for the admin console's charts: what the validator decided and what it raised."""
from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel

from services.ingest import readmodels
from services.ingest.deps import Admin, Pool
from services.ingest.problems import COMMON_PROBLEMS
from shared.catalogue import SYSTEM_EVENT_TYPES
from shared.events import utcnow

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=COMMON_PROBLEMS)

STATUSES = ("validated", "pending_review", "rejected", "pending")
SEVERITIES = ("low", "medium", "high", "critical")


class Stats(BaseModel):
    hours: list[AwareDatetime]
    decisions: dict[str, list[int]]
    insights: dict[str, list[int]]
    review_queue_depth: int


def _series(rows, keys: tuple[str, ...], hours: list[datetime], column: str) -> dict[str, list[int]]:
    index = {hour: i for i, hour in enumerate(hours)}
    series = {key: [0] * len(hours) for key in keys}
    for row in rows:
        if row[column] in series and row["hour"] in index:
            series[row[column]][index[row["hour"]]] = row["n"]
    return series


@router.get("/stats", response_model=Stats)
async def stats(_: Admin, pool: Pool, hours: int = Query(24, ge=1, le=168)) -> Stats:
    """App events by decision and fraud insights by severity, per hour, oldest hour first."""
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    buckets = [now - timedelta(hours=h) for h in range(hours - 1, -1, -1)]
    decided, raised, depth = await readmodels.activity(pool, buckets[0], sorted(SYSTEM_EVENT_TYPES))
    return Stats(hours=buckets, decisions=_series(decided, STATUSES, buckets, "validation_status"),
                 insights=_series(raised, SEVERITIES, buckets, "severity"), review_queue_depth=depth)
