"""Submitting an app event: claimed once per nonce, then published to Kafka."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.ingest import claims
from services.ingest.ports import Ports
from services.ingest.problems import Problem
from services.ingest.publisher import publish_or_503
from shared import topics
from shared.events import EventSubmitted

# How long a retry waits for the first copy's publish before publishing the same event itself:
# longer than the producer's own request timeout, so the first copy has failed by then.
FIRST_PUBLISH_PATIENCE = timedelta(seconds=15)


@dataclass(frozen=True)
class Accepted:
    event: EventSubmitted
    duplicate: bool
    headers: dict[str, str]


async def _publish(ports: Ports, event: EventSubmitted) -> None:
    await publish_or_503(ports.publisher, topics.SUBMITTED, event, key=event.user_id, what="event")
    ports.marks.mark(event)


async def submit_event(ports: Ports, event: EventSubmitted, *, now: datetime) -> Accepted:
    """Claim the event's nonce (and a place in the user's hourly quota), then publish it; a retry
    with the same body gets the first event."""
    outcome = await ports.claims.claim(event)
    match outcome:
        case claims.NonceReused():
            raise Problem(422, "nonce-reused", "This nonce was already used with a different body.",
                          title="Unprocessable Content",
                          errors=[{"pointer": "/nonce", "detail": "already used with another body"}])
        case claims.RateLimited(quota=quota):
            raise Problem(429, "rate-limited",
                          f"At most {quota.limit} events an hour are accepted per user.",
                          headers={"Retry-After": str(quota.reset_seconds(now)),
                                   **quota.headers(now, after_accepting=False)})
        case claims.Duplicate(event=first, published=published, claimed_at=claimed_at):
            if not published and not await claims.wait_for_first_publish(
                    ports.pool, first, claimed_at + FIRST_PUBLISH_PATIENCE):
                await _publish(ports, first)
            return Accepted(first, duplicate=True, headers={})
        case claims.Claimed(quota=quota):
            await _publish(ports, event)
            return Accepted(event, duplicate=False, headers=quota.headers(now, after_accepting=True))
