"""The gateway's claim on (user, nonce) in PostgreSQL, shared by every gateway process.

One statement per submission, serialised per user by an advisory lock, decides whether
the request is new, a retry, a reuse of the nonce, or over the hourly limit. Only then is the
record published; the claim remembers it until Kafka acknowledges, so a retry can publish the
very same event (same event id) again, and nothing is counted twice downstream.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from services.ingest.ratelimit import WINDOW, Quota
from shared.events import EventSubmitted, utcnow

log = logging.getLogger("points.ingest")


@dataclass(frozen=True)
class Claimed:
    quota: Quota


@dataclass(frozen=True)
class Duplicate:
    event: EventSubmitted
    published: bool
    claimed_at: datetime


@dataclass(frozen=True)
class NonceReused:
    pass


@dataclass(frozen=True)
class RateLimited:
    quota: Quota


Outcome = Claimed | Duplicate | NonceReused | RateLimited


async def claim(pool: asyncpg.Pool, event: EventSubmitted, *, limit: int, ttl: timedelta) -> Outcome:
    """One statement (migration 0012's claim_nonce): the lock, the look-up, the count and the insert
    in one round trip."""
    row = await pool.fetchrow(
        "SELECT * FROM claim_nonce($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        event.user_id, event.nonce, event.event_id, event.body_hash, event.received_at, event.received_at + ttl,
        event.model_dump(mode="json"), event.received_at - WINDOW, limit)
    match row["outcome"]:
        case "reused":
            return NonceReused()
        case "duplicate":
            return Duplicate(EventSubmitted.model_validate(row["first_record"]), published=row["published"],
                             claimed_at=row["claimed_at"])
    quota = Quota(limit=limit, used=row["used"], oldest_in_window=row["oldest"])
    return RateLimited(quota) if row["outcome"] == "limited" else Claimed(quota)


class PublishedMarks:
    """Which claims Kafka has acknowledged, written a batch at a time off the request path.

    Only a retry of the same nonce reads the mark (and waits for it a moment, or publishes the same
    event again after a while, which every consumer applies once), so a mark lost in a crash costs
    nothing but that wait.
    """

    def __init__(self, pool: asyncpg.Pool, every: float = 0.02):
        self.pool, self.every = pool, every
        self.waiting: list[tuple[str, str]] = []
        self._task: asyncio.Task | None = None

    def mark(self, event: EventSubmitted) -> None:
        self.waiting.append((event.user_id, event.nonce))

    async def flush(self) -> None:
        batch, self.waiting = self.waiting, []
        if batch:
            await self.pool.execute(
                "UPDATE used_nonces n SET published_at = now() FROM unnest($1::text[], $2::text[]) AS m(u, k) "
                "WHERE n.user_id = m.u AND n.nonce = m.k AND n.published_at IS NULL",
                [u for u, _ in batch], [k for _, k in batch])

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.flush()
            except Exception:
                log.exception("marking claims published failed; a retry of those nonces will publish again")

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


async def wait_for_first_publish(pool: asyncpg.Pool, event: EventSubmitted, deadline: datetime) -> bool:
    """A copy that raced the first request waits for its publish; False if it has not come by `deadline`."""
    while utcnow() < deadline:
        published = await pool.fetchval(
            "SELECT published_at IS NOT NULL FROM used_nonces WHERE user_id = $1 AND nonce = $2",
            event.user_id, event.nonce,
        )
        if published:
            return True
        await asyncio.sleep(0.05)
    return False


async def delete_expired(pool: asyncpg.Pool, now: datetime | None = None) -> int:
    result = await pool.execute("DELETE FROM used_nonces WHERE expires_at < $1", now or utcnow())
    return int(result.split()[-1])


async def stuck_submissions(pool: asyncpg.Pool, older_than: datetime, limit: int = 500) -> list[EventSubmitted]:
    """Acknowledged events still undecided long after they were stored: to be offered to the validator again."""
    rows = await pool.fetch(
        "SELECT n.record FROM points_events p JOIN used_nonces n ON n.event_id = p.id "
        "WHERE p.validation_status = 'pending' AND p.created_at < $1 ORDER BY p.created_at LIMIT $2",
        older_than, limit)
    return [EventSubmitted.model_validate(r["record"]) for r in rows]
