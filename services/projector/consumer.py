"""Reads the log and hands batches to the store; Kafka's own group offsets are never trusted.

Positions live in PostgreSQL beside the rows (see store.apply_batch), so after a crash or a
rebalance the projector seeks to exactly where its last committed transaction ended.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from services.projector import store
from services.projector.projection import EventRow, Position, project
from services.projector.set_aside import SetAside
from shared import topics
from shared.consuming import FETCH_MAX_WAIT_MS, fill
from shared.signing import UNTRUSTED, Keyring, open_trusted

log = logging.getLogger("points.projector")

RECORDS = Counter("projector_records_total", "Log records applied to the read models", ["topic"])
UNREADABLE = Counter("projector_dead_lettered_records_total", "Unsigned or unreadable records set aside",
                     ["topic"])
BATCH_SECONDS = Histogram("projector_batch_seconds", "Time to apply one batch in PostgreSQL")
LAG = Gauge("projector_lag_records", "Records behind the end of the log", ["topic", "partition"])
UNSTORABLE = Counter("projector_unstorable_records_total", "Records PostgreSQL refused, set aside", ["topic", "sqlstate"])
STALE = Counter("projector_stale_batches_total", "Batches dropped because another instance had written past them")
BATCH_RETRIES = Counter("projector_batch_retries_total", "Batches tried again after a failure that was not theirs")

# SQLSTATE classes that mean "this record's values": data exceptions (a NUL byte, a number out of
# range), integrity violations (a balance check) and program limits (a value too large for an index).
RECORD_FAULTS = frozenset({"22", "23", "54"})
# Of those, the ones a well-formed record from our own gateway cannot cause: someone found a gap.
SUSPICIOUS = frozenset({"22", "54"})


def record_fault(exc: BaseException) -> str | None:
    """The SQLSTATE when PostgreSQL refused the values themselves; None for anything else
    (connection lost, server shutting down, a privilege missing), which retrying may cure."""
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        return "22000"  # refused by asyncpg itself before sending (an integer out of the column's range)
    state = getattr(exc, "sqlstate", None) if isinstance(exc, asyncpg.PostgresError) else None
    return state if state and state[:2] in RECORD_FAULTS else None

GROUP = "points-projector"


async def seek_to_stored(consumer: AIOKafkaConsumer, pool: asyncpg.Pool, group: str, partitions) -> None:
    stored = await store.load_offsets(pool, group)
    for tp in partitions:
        offset = stored.get((tp.topic, tp.partition))
        if offset is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, consumer: AIOKafkaConsumer, pool: asyncpg.Pool, group: str):
        self.consumer, self.pool, self.group = consumer, pool, group

    async def on_partitions_revoked(self, revoked) -> None:
        pass  # nothing buffered: every batch is committed before the next poll

    async def on_partitions_assigned(self, assigned) -> None:
        await seek_to_stored(self.consumer, self.pool, self.group, assigned)


class Projector:
    def __init__(self, bootstrap: str, pool: asyncpg.Pool, keyring: Keyring, group: str = GROUP,
                 subscribed: tuple[str, ...] = (topics.SUBMITTED, topics.LEDGER, topics.FRAUD, topics.COUPONS,
                                                topics.REPLIES),
                 set_aside: SetAside | None = None, written: Callable[[set[str]], None] | None = None):
        """`set_aside` None: records that cannot be applied are skipped silently (a rebuild, which
        must not write to the live topics; the live projector already set them aside). `written`
        hears of the users whose balances each committed batch refreshed (the read-model checks)."""
        self.pool = pool
        self.written = written
        self.keyring = keyring
        self.set_aside = set_aside
        self.group = group
        self.subscribed = subscribed
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            max_poll_records=1000,
        )
        self.running = False

    async def start(self) -> None:
        if self.set_aside:
            await self.set_aside.start()
        await self.consumer.start()
        self.consumer.subscribe(list(self.subscribed),
                                listener=_SeekToStoredOffsets(self.consumer, self.pool, self.group))
        self.running = True

    async def stop(self) -> None:
        self.running = False
        await self.consumer.stop()
        if self.set_aside:
            await self.set_aside.stop()

    async def run(self) -> None:
        while self.running:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
            if batches:
                batches = await fill(self.consumer, batches, max_records=1000)
                await self.apply(batches)
                await self._report_lag()

    async def apply(self, batches: dict[TopicPartition, list]) -> None:
        rows, sources, next_offsets = [], [], {}
        for tp, messages in batches.items():
            for message in messages:
                try:
                    event = open_trusted(self.keyring, message.key, message.value, message.headers)
                except UNTRUSTED as exc:
                    await self._put_aside(tp, message, str(exc), suspicious=False)
                    continue
                row = project(event, Position(tp.topic, tp.partition, message.offset))
                if row is not None:
                    rows.append(row)
                    sources.append((tp, message))
            next_offsets[(tp.topic, tp.partition)] = messages[-1].offset + 1
        if not await self._until_written(rows, sources, next_offsets):
            return
        if self.written is not None:
            self.written({row.user_id for row in rows if isinstance(row, EventRow)})
        for tp, messages in batches.items():
            RECORDS.labels(tp.topic).inc(len(messages))

    async def _until_written(self, rows, sources, next_offsets) -> bool:
        """Write the batch; a failure that is not a record's own is retried, skipping nothing.
        False when it was not written: told to stop first (nothing of it is committed, so it is read
        again), or another instance had written past it (read on from where that one got).

        Every step is idempotent in log order, so writing a batch again after a half-done attempt
        ends in the same rows.
        """
        delay = 0.2
        while self.running:
            try:
                await self._write(rows, sources, next_offsets)
                return True
            except store.StaleBatch as stale:
                STALE.inc()
                log.warning("another instance wrote past this batch; reading on from the stored offsets",
                            extra={"partitions": [f"{t}/{p}" for t, p in stale.stored]})
                # Nothing of the batch was written: every partition in it reads again from where
                # the stored offsets say, the stale ones further on, the others from where they were.
                await self._seek_to_stored()
                return False
            except Exception as exc:
                BATCH_RETRIES.inc()
                log.warning("writing a batch failed; trying it again", extra={
                    "error_message": f"{type(exc).__name__}: {exc}", "retry_in_seconds": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        return False

    async def _seek_to_stored(self) -> None:
        await seek_to_stored(self.consumer, self.pool, self.group, self.consumer.assignment())

    async def _write(self, rows, sources, next_offsets) -> None:
        try:
            with BATCH_SECONDS.time():
                await store.apply_batch(self.pool, self.group, rows, next_offsets)
        except Exception as exc:
            if record_fault(exc) is None:
                raise
            await self._apply_one_by_one(rows, sources, next_offsets)

    async def _apply_one_by_one(self, rows, sources, next_offsets) -> None:
        """A value PostgreSQL refuses spoils the whole batch: find it, set it aside, apply the rest."""
        for row, (tp, message) in zip(rows, sources):
            try:
                await store.apply_batch(self.pool, self.group, [row], {(tp.topic, tp.partition): message.offset + 1})
            except store.StaleBatch:
                continue  # written already (by an earlier try of this batch, or another instance)
            except Exception as exc:
                state = record_fault(exc)
                if state is None:
                    raise  # not the record's doing: the caller retries the whole batch
                UNSTORABLE.labels(tp.topic, state).inc()
                await self._put_aside(tp, message, f"PostgreSQL refused it ({state}): {exc}",
                                      suspicious=state[:2] in SUSPICIOUS)
        await store.apply_batch(self.pool, self.group, [], next_offsets)

    async def _put_aside(self, tp: TopicPartition, message, reason: str, *, suspicious: bool) -> None:
        """An untrusted, unreadable or unstorable record is never applied and never stalls the partition."""
        UNREADABLE.labels(tp.topic).inc()
        log.warning("dead-lettering a record", extra={
            "topic": tp.topic, "partition": tp.partition, "offset": message.offset, "error": reason[:500]})
        if self.set_aside:
            await self.set_aside.put(tp, message, reason, suspicious=suspicious)

    async def _report_lag(self) -> None:
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is not None:
                LAG.labels(tp.topic, str(tp.partition)).set(max(0, end - await self.consumer.position(tp)))
