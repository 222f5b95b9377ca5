"""What the validator remembers of a user between events. Pure; stored as a plain dict in a faust table."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.events import EventSubmitted

# A resubmitted record can only arrive while its nonce is still claimed at the gateway.
DEDUP_HORIZON = timedelta(hours=26)


@dataclass
class UserState:
    last_event_time: datetime | None = None
    # event id -> when it was received: the events already decided, so a redelivery is skipped.
    decided: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict | None) -> "UserState":
        if not raw:
            return cls()
        last = raw.get("last_event_time")
        return cls(last_event_time=datetime.fromisoformat(last) if last else None,
                   decided=dict(raw.get("decided", {})))

    def to_dict(self) -> dict:
        return {"last_event_time": self.last_event_time.isoformat() if self.last_event_time else None,
                "decided": self.decided}

    def already_decided(self, event: EventSubmitted) -> bool:
        return str(event.event_id) in self.decided

    def remember(self, event: EventSubmitted) -> None:
        self.decided[str(event.event_id)] = event.received_at.timestamp()
        horizon = (event.received_at - DEDUP_HORIZON).timestamp()
        self.decided = {k: t for k, t in self.decided.items() if t >= horizon}
        if self.last_event_time is None or event.event_time > self.last_event_time:
            self.last_event_time = event.event_time
