"""Turning an app's claim into a submitted event. Pure: the clock is passed in."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from uuid import uuid4

from shared.catalogue import lookup
from shared.events import EventSubmitted

MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(hours=24)


class Rejected(Exception):
    def __init__(self, slug: str, detail: str, errors: list[dict] | None = None):
        super().__init__(detail)
        self.slug, self.detail, self.errors = slug, detail, errors or []


def body_hash(*, event_type: str, event_time: datetime, nonce: str, payload: dict, device_id: str | None) -> str:
    """Identity of a request for replay checks. The attestation is left out: a retry may carry a fresh one."""
    canonical = json.dumps(
        [event_type, event_time.astimezone(timezone.utc).isoformat(), nonce, payload, device_id],
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def accept(*, user_id: str, event_type: str, event_time: datetime, nonce: str, payload: dict,
           device_id: str | None, proof_type: str, now: datetime) -> EventSubmitted:
    kind = lookup(event_type)
    if kind is None:
        raise Rejected("unknown-event-type", f"Event type {event_type!r} is not in the catalogue.",
                       [{"pointer": "/event_type", "detail": "unknown event type"}])
    missing = [name for name in kind.required_payload if name not in payload]
    if missing:
        raise Rejected("validation-error", f"{event_type} needs payload fields {', '.join(missing)}.",
                       [{"pointer": f"/payload/{name}", "detail": "field required"} for name in missing])
    if event_time > now + MAX_FUTURE or event_time < now - MAX_AGE:
        raise Rejected("stale-event", "event_time must lie between 24 hours ago and 5 minutes from now.",
                       [{"pointer": "/event_time", "detail": "outside the accepted window"}])
    return EventSubmitted(
        event_id=uuid4(), user_id=user_id, event_type=event_type, event_time=event_time, nonce=nonce,
        payload=payload, device_id=device_id, proof_type=proof_type, points=kind.points, received_at=now,
        body_hash=body_hash(event_type=event_type, event_time=event_time, nonce=nonce, payload=payload,
                            device_id=device_id),
    )
