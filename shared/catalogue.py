"""What each kind of app event is worth. The server's word, never the client's."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventKind:
    event_type: str
    points: int
    required_payload: tuple[str, ...] = ()
    daily_cap: int | None = None


CATALOGUE: dict[str, EventKind] = {
    kind.event_type: kind
    for kind in (
        EventKind("habit_completed", points=10, required_payload=("habit_id",), daily_cap=20),
        EventKind("streak_milestone", points=50, required_payload=("streak_days",), daily_cap=1),
        EventKind("daily_checkin", points=2, daily_cap=1),
    )
}

# Ledger-only types: written by the system or an admin, never accepted from an app.
SYSTEM_EVENT_TYPES = frozenset({"admin_award", "coupon_redemption", "coupon_refund", "clawback"})


def lookup(event_type: str) -> EventKind | None:
    return CATALOGUE.get(event_type)
