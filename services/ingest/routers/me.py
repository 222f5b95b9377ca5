"""The signed-in user's balance and history."""
from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from services.ingest.deps import AppUser, Pool
from services.ingest.problems import COMMON_PROBLEMS, Problem
from services.ingest.readmodels import balance, history
from services.ingest.schemas import Balance, HistoryItem, HistoryPage

router = APIRouter(prefix="/v1/me", tags=["me"], responses=COMMON_PROBLEMS)


def _encode_cursor(event_time: datetime, event_id: UUID) -> str:
    raw = json.dumps([event_time.isoformat(), str(event_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        event_time, event_id = json.loads(raw)
        return datetime.fromisoformat(event_time), UUID(event_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise Problem(400, "bad-cursor", "The cursor is not one this API gave out.") from exc


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
    rows = await history(pool, user.sub, limit, _decode_cursor(cursor) if cursor else None)
    items = [HistoryItem(event_id=r["id"], event_type=r["event_type"], event_time=r["event_time"],
                         points_delta=r["points_delta"], validation_status=r["validation_status"],
                         trust_score=r["trust_score"]) for r in rows]
    next_cursor = _encode_cursor(rows[-1]["event_time"], rows[-1]["id"]) if len(rows) == limit else None
    return HistoryPage(items=items, next_cursor=next_cursor)
