"""Reads the log and hands batches to the store; Kafka's own group offsets are never trusted.

Positions live in PostgreSQL beside the rows (see store.apply_batch), so after a crash or a
rebalance the projector seeks to exactly where its last committed transaction ended.
"""
from __future__ import annotations

import logging

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from services.projector import store
from services.projector.projection import Position, project
from shared import topics
from shared.deadletter import dead_letter
from shared.envelope import UnreadableRecord, from_record
from shared.signing import BadSignature, Keyring

log = logging.getLogger("points.projector")

RECORDS = Counter("projector_records_total", "Log records applied to the read models", ["topic"])
UNREADABLE = Counter("projector_dead_lettered_records_total", "Unsigned or unreadable records set aside",
                     ["topic"])
BATCH_SECONDS = Histogram("projector_batch_seconds", "Time to apply one batch in PostgreSQL")
LAG = Gauge("projector_lag_records", "Records behind the end of the log", ["topic", "partition"])

GROUP = "points-projector"


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, consumer: AIOKafkaConsumer, pool: asyncpg.Pool, group: str):
        self.consumer, self.pool, self.group = consumer, pool, group

    async def on_partitions_revoked(self, revoked) -> None:
        pass  # nothing buffered: every batch is committed before the next poll

    async def on_partitions_assigned(self, assigned) -> None:
        stored = await store.load_offsets(self.pool, self.group)
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)


class Projector:
    def __init__(self, bootstrap: str, pool: asyncpg.Pool, keyring: Keyring, group: str = GROUP,
                 subscribed: tuple[str, ...] = (topics.SUBMITTED, topics.LEDGER, topics.FRAUD, topics.COUPONS,
                                                topics.REPLIES)):
        self.pool = pool
        self.keyring = keyring
        self.dead_letters = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
        self.group = group
        self.subscribed = subscribed
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=1000,
        )
        self.running = False

    async def start(self) -> None:
        await self.dead_letters.start()
        await self.consumer.start()
        self.consumer.subscribe(list(self.subscribed),
                                listener=_SeekToStoredOffsets(self.consumer, self.pool, self.group))
        self.running = True

    async def stop(self) -> None:
        self.running = False
        await self.consumer.stop()
        await self.dead_letters.stop()

    async def run(self) -> None:
        while self.running:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
            if batches:
                await self.apply(batches)
                await self._report_lag()

    async def apply(self, batches: dict[TopicPartition, list]) -> None:
        rows, sources, next_offsets = [], [], {}
        for tp, messages in batches.items():
            for message in messages:
                try:
                    self.keyring.verify(message.key, message.value, message.headers)
                    event = from_record(message.key, message.value, message.headers)
                except (BadSignature, UnreadableRecord) as exc:
                    await self._dead_letter(tp, message, exc)
                    continue
                row = project(event, Position(tp.topic, tp.partition, message.offset))
                if row is not None:
                    rows.append(row)
                    sources.append((tp, message))
            next_offsets[(tp.topic, tp.partition)] = messages[-1].offset + 1
        try:
            with BATCH_SECONDS.time():
                await store.apply_batch(self.pool, self.group, rows, next_offsets)
        except asyncpg.DataError:
            await self._apply_one_by_one(rows, sources, next_offsets)
        for tp, messages in batches.items():
            RECORDS.labels(tp.topic).inc(len(messages))

    async def _apply_one_by_one(self, rows, sources, next_offsets) -> None:
        """A value PostgreSQL refuses spoils the whole batch: find it, set it aside, apply the rest."""
        for row, (tp, message) in zip(rows, sources):
            try:
                await store.apply_batch(self.pool, self.group, [row], {(tp.topic, tp.partition): message.offset + 1})
            except asyncpg.DataError as exc:
                await self._dead_letter(tp, message, exc)
        await store.apply_batch(self.pool, self.group, [], next_offsets)

    async def _dead_letter(self, tp: TopicPartition, message, exc: Exception) -> None:
        """An untrusted or unreadable record is set aside, never applied, and never stalls the partition."""
        UNREADABLE.labels(tp.topic).inc()
        log.warning("dead-lettering a record", extra={
            "topic": tp.topic, "partition": tp.partition, "offset": message.offset, "error": str(exc)})
        letter = dead_letter(message.key, message.value, message.headers, reason=str(exc), topic=tp.topic,
                             partition=tp.partition, offset=message.offset, service="projector")
        await self.dead_letters.send_and_wait(topics.DEAD_LETTER, letter.value, key=letter.key,
                                              headers=letter.headers)

    async def _report_lag(self) -> None:
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is not None:
                LAG.labels(tp.topic, str(tp.partition)).set(max(0, end - await self.consumer.position(tp)))
