"""Admin operations."""
from __future__ import annotations

import logging

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.ingest import flags as flag_store
from services.ingest.deps import Admin, FlagsDep, Pool
from services.ingest.problems import COMMON_PROBLEMS

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=COMMON_PROBLEMS)
log = logging.getLogger("points.ingest")


class FlagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points_system_enabled: bool
    rollout_percent: int = Field(ge=0, le=100)


class FlagsOut(FlagsIn):
    updated_by: str
    updated_at: AwareDatetime | None


@router.get("/flags", response_model=FlagsOut)
async def get_flags(_: Admin, pool: Pool) -> FlagsOut:
    """The kill switch and the rollout percentage, as stored."""
    return FlagsOut(**vars(await flag_store.load(pool)))


@router.put("/flags", response_model=FlagsOut)
async def put_flags(body: FlagsIn, admin: Admin, pool: Pool, cache: FlagsDep) -> FlagsOut:
    """Change the kill switch or the rollout; every gateway follows within seconds."""
    saved = await flag_store.save(pool, enabled=body.points_system_enabled,
                                  rollout_percent=body.rollout_percent, admin=admin.sub)
    cache.current = saved
    log.warning("points.flags.changed", extra={"admin": admin.sub, **body.model_dump()})
    return FlagsOut(**vars(saved))
