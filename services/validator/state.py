"""What the validator remembers between events. Pure; stored as plain dicts in its compacted topics."""
from __future__ import annotations

import hashlib
import json
from bisect import insort
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Literal

from shared.events import EventSubmitted

# A resubmitted record can only arrive while its nonce is still claimed at the gateway.
DEDUP_HORIZON = timedelta(hours=26)
# Long enough for the daily and burst signals; older activity is summarised by last_activity.
RECENT_HORIZON = timedelta(hours=26)
REVIEW_HORIZON = timedelta(days=30)


def _received(entry: list) -> float:
    return entry[0]


def payload_fingerprint(event: EventSubmitted) -> str:
    """What a replayed request repeats: everything the app claimed except the nonce."""
    raw = json.dumps([event.event_type, event.payload, event.event_time.timestamp()], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Context:
    """What other keys' state says about this event: how many accounts share its device or IP."""

    accounts_on_device: int = 0
    accounts_on_ip: int = 0


@dataclass
class UserState:
    # event id -> when it was received: the events already decided, so a redelivery is skipped.
    decided: dict[str, float] = field(default_factory=dict)
    # [received, event_time, event_type, payload fingerprint] of recent events, oldest first.
    recent: list[list] = field(default_factory=list)
    # When the user was last active before the recent window (for silence and bursts).
    last_activity: float | None = None
    # event id -> the pending_review decision, so an admin's verdict can finish it.
    reviewable: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict | None) -> "UserState":
        return cls(**{k: v for k, v in (raw or {}).items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return {"decided": self.decided, "recent": self.recent, "last_activity": self.last_activity,
                "reviewable": self.reviewable}

    # -- questions the signals ask -----------------------------------------------------------
    def already_decided(self, event: EventSubmitted) -> bool:
        return str(event.event_id) in self.decided

    def recent_event_timestamps(self) -> list[float]:
        return [entry[1] for entry in self.recent]

    def recent_received(self) -> list[float]:
        return sorted(entry[0] for entry in self.recent)

    def received_within(self, now: datetime, window: timedelta) -> int:
        since = (now - window).timestamp()
        return sum(1 for entry in self.recent if entry[0] > since)

    def same_type_on_day(self, event: EventSubmitted) -> int:
        """Events of this type whose event time falls on the same UTC day as this one's."""
        start = datetime.combine(event.event_time.astimezone(timezone.utc).date(), time.min, timezone.utc).timestamp()
        end = start + 86400
        return sum(1 for entry in self.recent if entry[2] == event.event_type and start <= entry[1] < end)

    def seen_payload(self, event: EventSubmitted, window: timedelta) -> bool:
        since, fingerprint = (event.received_at - window).timestamp(), payload_fingerprint(event)
        return any(entry[3] == fingerprint and entry[0] > since for entry in self.recent)

    def silence_before_current_burst(self, now: datetime, window: timedelta) -> timedelta | None:
        """How long the user was quiet before the events of the current window began."""
        start = (now - window).timestamp()
        before = [entry[0] for entry in self.recent if entry[0] <= start]
        previous = max(before) if before else self.last_activity
        if previous is None:
            return None
        return timedelta(seconds=start - previous)

    # -- remembering -------------------------------------------------------------------------
    def remember(self, event: EventSubmitted) -> None:
        received = event.received_at.timestamp()
        # The horizons run from the newest event seen: an older one arriving late (from another
        # gateway, or delivered again) does not bring back what had already aged out.
        newest = max(received, self.recent[-1][0] if self.recent else received)
        self.decided[str(event.event_id)] = received
        # Pruned only when something has aged out: rebuilding them on every event was most of the cost.
        dedup_horizon = newest - DEDUP_HORIZON.total_seconds()
        if min(self.decided.values()) < dedup_horizon:
            self.decided = {k: t for k, t in self.decided.items() if t >= dedup_horizon}
        insort(self.recent, [received, event.event_time.timestamp(), event.event_type, payload_fingerprint(event)],
               key=_received)
        horizon = newest - RECENT_HORIZON.total_seconds()
        if self.recent[0][0] < horizon:
            dropped = [entry[0] for entry in self.recent if entry[0] < horizon]
            self.last_activity = max(dropped + ([self.last_activity] if self.last_activity else []))
            self.recent = [entry for entry in self.recent if entry[0] >= horizon]

    def hold_for_review(self, decision: dict, now: datetime) -> None:
        self.reviewable[decision["event_id"]] = decision
        horizon = (now - REVIEW_HORIZON).isoformat()
        self.reviewable = {k: v for k, v in self.reviewable.items() if v["decided_at"] >= horizon}


@dataclass
class AccountBook:
    """Which accounts have been seen on one device (or one IP): keyed by that device or IP."""

    accounts: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, raw: dict | None) -> "AccountBook":
        return cls(**(raw or {}))

    def to_dict(self) -> dict:
        return {"accounts": self.accounts}

    def add(self, user_id: str, keep: int = 100) -> int:
        if user_id not in self.accounts:
            self.accounts = [*self.accounts, user_id][-keep:]
        return len(self.accounts)


# How many accounts are remembered per device and per IP (a carrier's NAT has many honest ones).
KEEP_PER_DEVICE = 100
KEEP_PER_IP = 1000


@dataclass(frozen=True)
class Sighting:
    """One account seen on one device (or behind one IP): a fact every validator instance learns."""

    kind: Literal["device", "ip"]
    id: str
    user_id: str

    def key(self) -> bytes:
        """One key per pair, so the compacted topic keeps each pair once however often it is seen."""
        return hashlib.sha256(json.dumps([self.kind, self.id, self.user_id]).encode()).digest()

    def value(self) -> bytes:
        return json.dumps({"kind": self.kind, "id": self.id, "user_id": self.user_id}).encode()

    @classmethod
    def from_value(cls, raw: bytes) -> "Sighting":
        return cls(**json.loads(raw))


@dataclass
class Sightings:
    """Accounts per device and per IP, across every user: the same view in every validator instance.

    A pair counts as soon as it is seen; it is recorded once it is on the sightings topic (read back
    from it, or written in a batch that committed). A pair seen in a batch that was rolled back is
    not recorded, so the batch's retry writes it again.
    """

    devices: dict[str, AccountBook] = field(default_factory=dict)
    addresses: dict[str, AccountBook] = field(default_factory=dict)
    recorded: set[bytes] = field(default_factory=set)
    pending: set[bytes] = field(default_factory=set)

    def _count(self, sighting: Sighting) -> int:
        books, keep = (self.devices, KEEP_PER_DEVICE) if sighting.kind == "device" else (self.addresses, KEEP_PER_IP)
        return books.setdefault(sighting.id, AccountBook()).add(sighting.user_id, keep=keep)

    def learn(self, sighting: Sighting) -> None:
        """A pair read from the sightings topic (this instance's or another's)."""
        self._count(sighting)
        self.recorded.add(sighting.key())

    def see(self, event: EventSubmitted) -> tuple[Context, list[Sighting]]:
        """The cross-account context of this event, and the pairs to write because of it."""
        new: list[Sighting] = []
        counts = {"device": 0, "ip": 0}
        for kind, key in (("device", event.device_id), ("ip", event.client_ip_hash)):
            if not key:
                continue
            sighting = Sighting(kind, key, event.user_id)
            if sighting.key() not in self.recorded and sighting.key() not in self.pending:
                self.pending.add(sighting.key())
                new.append(sighting)
            counts[kind] = self._count(sighting)
        return Context(accounts_on_device=counts["device"], accounts_on_ip=counts["ip"]), new

    def committed(self, keys: list[bytes]) -> None:
        """The pairs a transaction that committed wrote."""
        self.recorded.update(keys)
        self.pending.difference_update(keys)

    def rolled_back(self, keys: list[bytes]) -> None:
        """The pairs of a transaction that was rolled back: written again by its retry."""
        self.pending.difference_update(keys)
