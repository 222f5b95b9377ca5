"""An admin's points commands: award points (a ledger record naming the admin) and claw them back
(through the redeemer, which owns the balance: never below zero, the rest recorded as owed)."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from services.ingest.commands.base import Reply, claim_key, record
from services.ingest.commands.coupons import answer_or_problem
from services.ingest.ports import Ports
from services.ingest.publisher import publish_or_503
from shared import topics
from shared.commands import ClawBack
from shared.events import EventDecided

_AWARD_IDS = UUID("0e3f6d1c-7e7b-4d8a-8f5e-3a1f9b2c4d6e")


async def award(ports: Ports, *, admin: str, user_id: str, points: int, reason: str, key: str,
                now: datetime) -> Reply:
    scope = f"award:{admin}"
    claimed = await claim_key(ports, scope=scope, key=key, now=now,
                              request={"user_id": user_id, "points": points, "reason": reason})
    if isinstance(claimed, Reply):
        return claimed
    # The ledger id follows from the claim, so a retry after a crash publishes the same record again.
    event_id = uuid5(_AWARD_IDS, f"award:{claimed.command_id}")
    decision = EventDecided(event_id=event_id, user_id=user_id, event_type="admin_award", event_time=now,
                            points_delta=points, proof_type="manual_admin", validation_status="validated",
                            trust_score=100, reasons=(reason,), rule_set="admin", validated_by=admin, decided_at=now)
    await publish_or_503(ports.publisher, topics.LEDGER, decision, key=user_id, what="award")
    return await record(ports, scope=scope, key=key, reply=Reply(201, {
        "event_id": str(event_id), "user_id": user_id, "points": points, "reason": reason, "validated_by": admin}))


async def claw_back(ports: Ports, *, admin: str, user_id: str, points: int | None, event_ids: list[UUID] | None,
                    reason: str, key: str, now: datetime) -> Reply:
    scope = f"clawback:{admin}"
    claimed = await claim_key(ports, scope=scope, key=key, now=now, request={
        "user_id": user_id, "points": points, "reason": reason,
        "event_ids": sorted(str(e) for e in event_ids) if event_ids else None})
    if isinstance(claimed, Reply):
        return claimed
    command = ClawBack(command_id=claimed.command_id, user_id=user_id, issued_at=now, admin=admin, reason=reason,
                       points=points, event_ids=tuple(event_ids) if event_ids else None)
    detail = (await answer_or_problem(ports, command, expected="clawed-back", for_owner=True)).detail
    return await record(ports, scope=scope, key=key, reply=Reply(201, {
        "event_id": detail["event_id"], "user_id": user_id, "requested_points": detail["requested_points"],
        "recovered_points": detail["recovered_points"], "unrecovered_points": detail["unrecovered_points"],
        "reversed_event_ids": detail["reversed_event_ids"], "available_points": detail["available_points"],
        "validated_by": admin, "reason": reason}))
