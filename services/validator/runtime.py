"""The validator's Kafka side: submissions and review commands in, decisions and insights out, in
Kafka transactions (shared/transactional.py) with each user's state in `points.validator.state`.

A crash, kill -9 included, aborts the open transaction; the restarted process reads its users'
state back and resumes from the last committed offsets, so every acknowledged event is decided
once, within moments of the restart.

Sightings (which accounts use a device or an IP) span users, so every instance reads all of them
from their compacted topic into the same view; an instance counts its own new sightings at once
(and writes them in the batch's transaction) and learns other instances' moments later.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter, Histogram

from services.validator.core import Handled, on_review, on_submission, on_untrusted
from services.validator.signals import RuleSet
from services.validator.state import Sighting, Sightings, UserState
from shared import topics
from shared.commands import HoldEvent, ReviewEvent
from shared.events import EventSubmitted, utcnow
from shared.signing import Keyring, Signer
from shared.topic_admin import partitions_of
from shared.transactional import TransactionalWorker

log = logging.getLogger("points.validator")

DECISIONS = Counter("validator_decisions_total", "Decisions made", ["validation_status", "event_type"])
TRUST = Histogram("validator_trust_score", "Trust scores given", buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100))
LATENCY = Histogram("validator_decision_latency_seconds", "From receipt at the gateway to decision committed",
                    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
INSIGHTS = Counter("validator_fraud_insights_total", "Fraud insights raised", ["insight_type", "severity"])
UNTRUSTED = Counter("validator_untrusted_records_total", "Records dead-lettered", ["reason"])
DUPLICATES = Counter("validator_duplicates_skipped_total", "Redelivered submissions already decided")
REVIEWS = Counter("validator_reviews_total", "Admin verdicts and holds applied", ["kind", "applied"])


class Validator(TransactionalWorker[UserState]):
    group = "points-validator"
    source = "/points/validator"
    inputs = (topics.SUBMITTED, topics.REVIEWS)
    state_class = UserState
    state_topic = topics.VALIDATOR_STATE
    # An admin's hold sent while an event was undecided wins over deciding it.
    waits_for = {topics.SUBMITTED: topics.REVIEWS}

    def __init__(self, bootstrap: str, *, signer: Signer, keyring: Keyring, rules: RuleSet):
        super().__init__(bootstrap, signer=signer, keyring=keyring)
        self.rules = rules
        self.sightings = Sightings()
        # partition -> the sightings its open transaction writes
        self._unsettled: dict[int, list[bytes]] = defaultdict(list)
        self._sightings_read = asyncio.Event()
        self._following: asyncio.Task | None = None

    async def start(self) -> None:
        self._following = asyncio.create_task(self._follow_sightings())
        # Counts from the first decision on, not after a warm-up; a follower that died says why.
        read = asyncio.create_task(self._sightings_read.wait())
        await asyncio.wait({read, self._following}, return_when=asyncio.FIRST_COMPLETED)
        if self._following.done():
            read.cancel()
            raise RuntimeError("reading the sightings failed") from self._following.exception()
        await super().start()

    def ready(self) -> bool:
        return super().ready() and self._following is not None and not self._following.done()

    def check(self) -> None:
        if self._following is not None and self._following.done():
            raise RuntimeError("the sightings reader stopped; device and IP counts would go stale")

    def rolled_back(self, partition: int) -> None:
        self.sightings.rolled_back(self._unsettled.pop(partition, []))

    async def stop(self) -> None:
        if self._following:
            self._following.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # check() reported it already
                await self._following
        await super().stop()

    async def _follow_sightings(self) -> None:
        """Every instance's sightings, from the beginning, for as long as this process runs."""
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                  isolation_level="read_committed", auto_offset_reset="earliest")
        await reader.start()
        try:
            partitions = await partitions_of(self.bootstrap, topics.VALIDATOR_SIGHTINGS)
            if not partitions:
                raise RuntimeError(f"topic {topics.VALIDATOR_SIGHTINGS} does not exist: run `points init`")
            tps = [TopicPartition(topics.VALIDATOR_SIGHTINGS, p) for p in partitions]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            while True:
                for messages in (await reader.getmany(timeout_ms=500)).values():
                    for message in messages:
                        try:
                            self.sightings.learn(Sighting.from_value(message.value))
                        except (TypeError, ValueError):
                            log.warning("skipping an unreadable sighting", extra={
                                "partition": message.partition, "offset": message.offset})
                if not self._sightings_read.is_set() and \
                        not [tp for tp in tps if await reader.position(tp) < ends[tp]]:
                    self._sightings_read.set()
        finally:
            await reader.stop()

    async def handle(self, tp: TopicPartition, message, now: datetime) -> tuple[str | None, Handled]:
        handled = await self._decide(tp, message, now)
        for sighting in handled.sightings:
            self._unsettled[tp.partition].append(sighting.key())
            await self.send(topics.VALIDATOR_SIGHTINGS, sighting.value(), key=sighting.key())
        for out in handled.publish:
            await self.publish(out.topic, out.event, out.key)
        return handled.changed_user, handled

    async def _decide(self, tp: TopicPartition, message, now: datetime) -> Handled:
        record, refused = await self.read(tp, message)
        if refused is not None:
            UNTRUSTED.labels(type(refused).__name__).inc()
            user = (message.key or b"").decode(errors="replace") or "unknown"
            return on_untrusted(user, str(refused), f"{tp.topic}/{tp.partition}/{message.offset}", now)
        if tp.topic == topics.SUBMITTED and isinstance(record, EventSubmitted):
            return on_submission(record, self.state(tp.partition, record.user_id), self.sightings, self.rules, now)
        if tp.topic == topics.REVIEWS and isinstance(record, (ReviewEvent, HoldEvent)):
            handled = on_review(record, self.state(tp.partition, record.user_id), now)
            REVIEWS.labels(type(record).__name__, str(handled.decision is not None).lower()).inc()
            return handled
        # Signed by us, so a misrouted record rather than an attack: kept for an operator, not raised as fraud.
        UNTRUSTED.labels("UnexpectedType").inc()
        await self.dead_letter(tp, message, f"{type(record).__name__} does not belong on {tp.topic}")
        return Handled()

    def committed(self, partition: int, results: list[Handled]) -> None:
        self.sightings.committed(self._unsettled.pop(partition, []))
        now = utcnow()
        for item in results:
            if item.duplicate:
                DUPLICATES.inc()
            for insight in item.insights:
                INSIGHTS.labels(insight.insight_type, insight.severity).inc()
                log.warning("points.fraud.detected", extra={
                    "user_id": insight.user_id, "insight_type": insight.insight_type, "severity": insight.severity,
                    "score": insight.score})
            decision = item.decision
            if decision is None:
                continue
            if item.received_at is None:  # an admin's verdict or hold
                log.info("points.event.reviewed", extra={"event_id": str(decision.event_id),
                                                         "admin": decision.validated_by,
                                                         "validation_status": decision.validation_status})
                continue
            DECISIONS.labels(decision.validation_status, decision.event_type).inc()
            TRUST.observe(decision.trust_score)
            LATENCY.observe((now - item.received_at).total_seconds())
            log.info("points.event.validated", extra={
                "event_id": str(decision.event_id), "validation_status": decision.validation_status,
                "points_awarded": decision.points_delta if decision.validation_status == "validated" else 0,
                "trust_score": decision.trust_score})
