"""The signed-in user's balance and history."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.ingest import cursors
from services.ingest.deps import AppUser, Pool
from services.ingest.problems import COMMON_PROBLEMS
from services.ingest.readmodels import balance, history
from services.ingest.schemas import Balance, HistoryItem, HistoryPage

router = APIRouter(prefix="/v1/me", tags=["me"], responses=COMMON_PROBLEMS)


@router.get("/points", response_model=Balance)
async def get_points(user: AppUser, pool: Pool) -> Balance:
    """Your balance."""
    row = await balance(pool, user.sub)
    if row is None:
        return Balance(user_id=user.sub, available_points=0, pending_points=0, lifetime_earned=0, lifetime_spent=0)
    return Balance(user_id=user.sub, **dict(row))


@router.get("/history", response_model=HistoryPage)
async def get_history(user: AppUser, pool: Pool, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                      cursor: str | None = None) -> HistoryPage:
    """Your events, newest first."""
    rows = await history(pool, user.sub, limit, cursors.decode(cursor) if cursor else None)
    items = [HistoryItem(event_id=r["id"], event_type=r["event_type"], event_time=r["event_time"],
                         points_delta=r["points_delta"], validation_status=r["validation_status"],
                         trust_score=r["trust_score"]) for r in rows]
    next_cursor = cursors.encode(rows[-1]["event_time"], rows[-1]["id"]) if len(rows) == limit else None
    return HistoryPage(items=items, next_cursor=next_cursor)
