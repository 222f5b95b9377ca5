"""An admin's review commands, sent to the validator on the reviews topic: a verdict on held
events, and the guide's partial rollback, which sends every undecided event to the queue."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID, uuid4

from services.ingest import readmodels
from services.ingest.ports import Ports
from services.ingest.problems import Problem
from services.ingest.publisher import publish_or_503
from shared import topics
from shared.commands import Command, HoldEvent, ReviewEvent

log = logging.getLogger("points.ingest")
Decision = Literal["approve", "reject"]


async def _publish(ports: Ports, command: Command) -> None:
    await publish_or_503(ports.publisher, topics.REVIEWS, command, key=command.user_id, what="command")


async def decide(ports: Ports, *, admin: str, event_id: UUID, decision: Decision, note: str | None,
                 now: datetime) -> None:
    """A verdict on one held event; refused unless it waits for one."""
    row = await readmodels.event_status(ports.pool, event_id)
    if row is None:
        raise Problem(404, "not-found", "No such event.")
    if row["validation_status"] != "pending_review":
        raise Problem(409, "not-in-review", f"The event is {row['validation_status']}, not awaiting review.")
    await _publish(ports, ReviewEvent(command_id=uuid4(), user_id=row["user_id"], issued_at=now, event_id=event_id,
                                      admin=admin, decision=decision, note=note))
    log.warning("points.review.decided", extra={"admin": admin, "event_id": str(event_id), "decision": decision})


@dataclass(frozen=True)
class Outcome:
    event_id: UUID
    # accepted: the verdict is on its way to the validator; not-in-review / not-found: nothing was sent.
    outcome: Literal["accepted", "not-in-review", "not-found"]
    validation_status: str | None = None


async def decide_many(ports: Ports, *, admin: str, decision: Decision, note: str | None,
                      event_ids: list[UUID] | None, user_id: str | None, now: datetime) -> list[Outcome]:
    """One verdict for the named events, or for every held event of one user; each event's outcome."""
    rows = await readmodels.held_events(ports.pool, event_ids=event_ids, user_id=user_id)
    found = {r["id"]: r for r in rows}
    outcomes = []
    for event_id in event_ids if event_ids is not None else list(found):
        row = found.get(event_id)
        if row is None:
            outcomes.append(Outcome(event_id, "not-found"))
        elif row["validation_status"] != "pending_review":
            outcomes.append(Outcome(event_id, "not-in-review", row["validation_status"]))
        else:
            # The validator finishes a held event once, so a repeated bulk verdict changes nothing.
            await _publish(ports, ReviewEvent(command_id=uuid4(), user_id=row["user_id"], issued_at=now,
                                              event_id=event_id, admin=admin, decision=decision, note=note))
            outcomes.append(Outcome(event_id, "accepted", "pending_review"))
    log.warning("points.review.bulk_decided", extra={
        "admin": admin, "decision": decision, "user_id": user_id,
        "accepted": sum(o.outcome == "accepted" for o in outcomes), "asked": len(outcomes)})
    return outcomes


async def hold_pending(ports: Ports, *, admin: str, user_ids: list[str] | None = None, now: datetime) -> int:
    """A hold for every event still pending (of these users, when named); the validator holds those it
    has not decided yet. How many were sent."""
    rows = await readmodels.pending_events(ports.pool, user_ids)
    for r in rows:
        await _publish(ports, HoldEvent(
            command_id=uuid4(), user_id=r["user_id"], issued_at=now, event_id=r["id"], admin=admin,
            event_type=r["event_type"], event_time=r["event_time"], points=r["points_delta"],
            proof_type=r["proof_type"]))
    log.warning("points.review.hold_pending", extra={"admin": admin, "held": len(rows), "users": user_ids})
    return len(rows)
