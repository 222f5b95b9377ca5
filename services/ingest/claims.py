"""The gateway's claim on (user, nonce) in PostgreSQL, shared by every gateway process.

One statement, serialised per user by an advisory lock, decides for each submission whether it is
new, a retry, a reuse of the nonce, or over the hourly limit; the submissions that arrive together
share the statement. Only then is the record published; the claim remembers it until Kafka
acknowledges, so a retry can publish the very same event (same event id) again, and nothing is
counted twice downstream.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
from prometheus_client import Histogram

from services.ingest.ratelimit import WINDOW, Quota
from shared.events import EventSubmitted, utcnow

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger("points.ingest")
CLAIMS_PER_STATEMENT = Histogram("ingest_claims_per_statement", "Submissions claimed together in one PostgreSQL "
                                 "statement", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))


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


def _outcome(row, *, limit: int) -> Outcome:
    match row["outcome"]:
        case "reused":
            return NonceReused()
        case "duplicate":
            return Duplicate(EventSubmitted.model_validate(row["first_record"]), published=row["published"],
                             claimed_at=row["claimed_at"])
    quota = Quota(limit=limit, used=row["used"], oldest_in_window=row["oldest"])
    return RateLimited(quota) if row["outcome"] == "limited" else Claimed(quota)


class Claims:
    """Claims on (user, nonce), sent to PostgreSQL a batch at a time (migration 0014's claim_nonces).

    A claim goes at once while fewer than `most_in_flight` statements are out; the claims that arrive
    meanwhile wait for the next statement and share it. So a lone request pays one round trip and no
    wait, and under load one statement (one round trip, one commit) serves many requests.
    """

    def __init__(self, pool: asyncpg.Pool, *, limit: int, ttl: timedelta, most_in_flight: int = 3,
                 most_per_batch: int = 200):
        self.pool, self.limit, self.ttl = pool, limit, ttl
        self.most_in_flight, self.most_per_batch = most_in_flight, most_per_batch
        self._waiting: list[tuple[EventSubmitted, asyncio.Future]] = []
        self._in_flight: set[asyncio.Task] = set()

    async def claim(self, event: EventSubmitted) -> Outcome:
        """The outcome for this submission: new (claimed), a retry, a reuse of the nonce, or over the limit."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((event, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._waiting and len(self._in_flight) < self.most_in_flight:
            batch, self._waiting = self._waiting[:self.most_per_batch], self._waiting[self.most_per_batch:]
            task = asyncio.create_task(self._settle(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        self._dispatch()

    async def _settle(self, batch: list[tuple[EventSubmitted, asyncio.Future]]) -> None:
        try:
            outcomes = await self._claim_all([event for event, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                _answer(batch[0][1], error=exc)
                return
            # One submission PostgreSQL refuses must not fail the others: each alone then.
            for event, future in batch:
                try:
                    (outcome,) = await self._claim_all([event])
                except Exception as alone:
                    _answer(future, error=alone)
                else:
                    _answer(future, outcome)
            return
        except Exception as exc:
            for _, future in batch:
                _answer(future, error=exc)
            return
        for (_, future), outcome in zip(batch, outcomes):
            _answer(future, outcome)

    async def _claim_all(self, events: list[EventSubmitted]) -> list[Outcome]:
        CLAIMS_PER_STATEMENT.observe(len(events))
        rows = await self.pool.fetch(
            "SELECT * FROM claim_nonces($1, $2, $3, $4, $5, $6, $7, $8, $9) ORDER BY ord",
            [e.user_id for e in events], [e.nonce for e in events], [e.event_id for e in events],
            [e.body_hash for e in events], [e.received_at for e in events],
            [e.received_at + self.ttl for e in events], [e.model_dump_json() for e in events],
            [e.received_at - WINDOW for e in events], self.limit)
        return [_outcome(row, limit=self.limit) for row in rows]


def claims_from(pool: asyncpg.Pool, settings: "Settings") -> Claims:
    """The claims of a gateway with these settings' hourly limit and nonce lifetime."""
    return Claims(pool, limit=settings.rate_limit_per_hour, ttl=timedelta(hours=settings.nonce_ttl_hours))


def _answer(future: asyncio.Future, outcome: Outcome | None = None, *, error: BaseException | None = None) -> None:
    """Settle a waiting request, unless it went away (its client disconnected)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(outcome)


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
