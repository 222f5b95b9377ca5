"""An admin's verdict and holds, turned into final ledger records. Pure."""
from __future__ import annotations

from datetime import datetime

from services.validator.state import UserState
from shared.commands import HoldEvent, ReviewEvent
from shared.events import EventDecided

REVIEW_REASONS = {"approve": "review_approved", "reject": "review_rejected"}


def finish_review(command: ReviewEvent, state: UserState, now: datetime) -> EventDecided | None:
    """The final record for a held event, naming the admin; None if the event is not awaiting review."""
    held = state.reviewable.pop(str(command.event_id), None)
    if held is None:
        return None
    original = EventDecided.model_validate(held)
    return original.model_copy(update={
        "validation_status": "validated" if command.decision == "approve" else "rejected",
        "validated_by": command.admin,
        "reasons": (*original.reasons, REVIEW_REASONS[command.decision]),
        "review_note": command.note,
        "decided_at": now,
    })


def hold(command: HoldEvent, state: UserState, now: datetime) -> EventDecided | None:
    """Send a still-undecided event to review; None if it was decided meanwhile."""
    if str(command.event_id) in state.decided:
        return None
    state.decided[str(command.event_id)] = now.timestamp()
    decision = EventDecided(
        event_id=command.event_id, user_id=command.user_id, event_type=command.event_type,
        event_time=command.event_time, points_delta=command.points, proof_type=command.proof_type,
        validation_status="pending_review", trust_score=50, reasons=("held_by_admin",), rule_set="admin-hold",
        validated_by=command.admin, decided_at=now)
    state.hold_for_review(decision.model_dump(mode="json"), now)
    return decision
