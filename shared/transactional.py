"""Read-process-write in Kafka transactions, with per-user state in a compacted topic.

The validator and the redeemer share this loop. Each batch is one transaction: whatever records
handling it produced, the users' changed state and the consumed offsets commit together or not at
all. A crash, kill -9 included, aborts the open transaction; on an assignment (a start, a restart,
a rebalance) or after an aborted transaction, the state of the owned partitions is read back from
the compacted topic and consumption resumes from the last committed offsets. So an input is
handled exactly once as far as anything downstream (read_committed) can tell.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import ProducerFenced, TransactionalIdAuthorizationFailed
from prometheus_client import Counter, Histogram

from shared import topics
from shared.changelog import read_to_end
from shared.deadletter import dead_letter
from shared.envelope import UnreadableRecord, from_record, to_record
from shared.events import Event, utcnow
from shared.signing import BadSignature, Keyring, Signer

log = logging.getLogger("points.transactional")
State = TypeVar("State")

TRANSACTIONS = Histogram("points_transaction_seconds", "Time to handle and commit one batch", ["group"])
ABORTED = Counter("points_transactions_aborted_total", "Batches rolled back and read again after a failure",
                  ["group"])
# Aborts in a row with no commit between: past this the producer is taken to be spent (fenced,
# or refused by the broker for good) and the process exits, to be restarted with a fresh one.
MAX_ABORTS_IN_A_ROW = 5
DEFERRED = Counter("points_batches_deferred_total", "Partitions' records held back until a topic they wait for "
                   "was read to its end", ["group", "topic"])


class _Restore(ConsumerRebalanceListener):
    """aiokafka runs these in its coordinator task, beside the loop: they take the batch lock, so a
    batch never runs on state that is being forgotten or not yet read back."""

    def __init__(self, worker: "TransactionalWorker"):
        self.worker = worker

    async def on_partitions_revoked(self, revoked) -> None:
        async with self.worker.batch_lock:  # the batch in hand commits (or aborts) first
            self.worker.forget({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned) -> None:
        async with self.worker.batch_lock:
            try:
                await self.worker.restore({tp.partition for tp in assigned})
            except Exception:
                # Not owned until restored: the loop leaves these partitions alone and retries.
                log.exception("restoring state failed; will retry", extra={"group": self.worker.group})


class TransactionalWorker(ABC, Generic[State]):
    group: ClassVar[str]
    source: ClassVar[str]
    # Every input topic has the same partition count and is keyed by user, so partition p of each
    # holds the same users; the range assignor gives all of them to one instance.
    inputs: ClassVar[tuple[str, ...]]
    state_topic: ClassVar[str]
    # topic -> the topic it waits for: records of the first are handled only once the same partition
    # of the second has been read to its end (asked of the broker at that moment), and the second is
    # handled first within a batch.
    waits_for: ClassVar[Mapping[str, str]] = {}

    def __init__(self, bootstrap: str, *, signer: Signer, keyring: Keyring, instance: str):
        self.bootstrap, self.signer, self.keyring = bootstrap, signer, keyring
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=self.group, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest", max_poll_records=500,
            partition_assignment_strategy=(RangePartitionAssignor,),
            # A crashed instance's partitions move on after 10 s.
            session_timeout_ms=10000, heartbeat_interval_ms=3000)
        # One transactional id per instance: a restarted instance fences its previous incarnation.
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, transactional_id=f"{self.group}-{instance}", enable_idempotence=True,
            acks="all", linger_ms=5)
        # partition -> user -> state, for the partitions this instance owns
        self.states: dict[int, dict[str, State]] = defaultdict(dict)
        # Partitions whose state was read back since they were assigned: the only ones handled.
        self.owned: set[int] = set()
        self.batch_lock = asyncio.Lock()
        self._sends: list[asyncio.Future] = []
        self.running = False

    # A user's state: built with no arguments, stored as JSON through from_dict / to_dict.
    state_class: ClassVar[type]

    # -- what a service says ------------------------------------------------------------------
    @abstractmethod
    async def handle(self, tp: TopicPartition, message, now: datetime) -> tuple[str | None, Any]:
        """Handle one input inside the open transaction: the user whose state changed (or None), and
        anything `committed` should see once the transaction is through."""

    def committed(self, results: list[Any]) -> None:
        """After the transaction committed: count and log, so an aborted batch is never counted twice."""

    def rolled_back(self) -> None:
        """After the transaction was aborted, before the batch is read again."""

    def check(self) -> None:
        """Raise when the worker can no longer work correctly, so the process stops and is restarted."""

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe(list(self.inputs), listener=_Restore(self))
        self.running = True

    async def stop(self) -> None:
        self.running = False
        await self.consumer.stop()
        await self.producer.stop()

    def ready(self) -> bool:
        """Working: in the group, with the state of every assigned partition restored."""
        assigned = {tp.partition for tp in self.consumer.assignment()}
        return self.running and bool(assigned) and assigned <= self.owned

    # -- state --------------------------------------------------------------------------------
    def state(self, partition: int, user_id: str) -> State:
        if partition not in self.owned:
            raise RuntimeError(f"partition {partition} is not owned (state not restored)")
        owned = self.states[partition]
        if user_id not in owned:
            owned[user_id] = self.state_class()
        return owned[user_id]

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.owned.discard(partition)
            self.states.pop(partition, None)

    async def restore(self, partitions: set[int]) -> None:
        stored = await read_to_end(self.bootstrap, self.state_topic, partitions)
        for partition, values in stored.items():
            self.states[partition] = {key.decode(): self.state_class.from_dict(json.loads(value))
                                      for key, value in values.items()}
            self.owned.add(partition)
        log.info("state restored", extra={"group": self.group, "partitions": sorted(partitions),
                                           "users": sum(len(self.states[p]) for p in partitions)})

    async def _recover(self) -> None:
        """After an aborted transaction: back to the last committed state and offsets."""
        assigned = self.consumer.assignment()
        await self.restore({tp.partition for tp in assigned})
        for tp in assigned:
            committed = await self.consumer.committed(tp)
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)

    # -- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        aborts_in_a_row = 0
        while self.running:
            self.check()
            unrestored = {tp.partition for tp in self.consumer.assignment()} - self.owned
            if unrestored:
                await self._retry_restore(unrestored)
            batches = await self.consumer.getmany(timeout_ms=200, max_records=500)
            if not batches:
                continue
            try:
                async with self.batch_lock:
                    with TRANSACTIONS.labels(self.group).time():
                        results = await self.process(batches)
            except (ProducerFenced, TransactionalIdAuthorizationFailed):
                # Another process took over this instance's transactional id: this one must stop.
                log.error("fenced by another instance with the same transactional id; stopping",
                          extra={"group": self.group})
                raise
            except Exception:
                ABORTED.labels(self.group).inc()
                aborts_in_a_row += 1
                if aborts_in_a_row >= MAX_ABORTS_IN_A_ROW:
                    log.error("transactions keep failing; stopping so a fresh process (and producer) takes over",
                              extra={"group": self.group, "aborts": aborts_in_a_row})
                    raise
                log.exception("transaction failed; restoring the last committed state")
                with contextlib.suppress(Exception):  # usually aborted already by the context manager
                    await self.producer.abort_transaction()
                self.rolled_back()
                await asyncio.sleep(min(0.25 * 2 ** aborts_in_a_row, 5.0))  # a broker away for a moment
                async with self.batch_lock:
                    try:
                        await self._recover()
                    except Exception:
                        # Not owned until restored: the loop retries the restore before reading on.
                        log.exception("restoring state failed; will retry", extra={"group": self.group})
                        self.forget({tp.partition for tp in self.consumer.assignment()})
                continue
            aborts_in_a_row = 0
            self.committed(results)

    async def _retry_restore(self, partitions: set[int]) -> None:
        async with self.batch_lock:
            try:
                await self._recover()
            except Exception:
                log.exception("restoring state failed; will retry", extra={"partitions": sorted(partitions)})
                await asyncio.sleep(1)

    async def _waiting(self, batches: dict[TopicPartition, list]) -> set[TopicPartition]:
        """Input partitions whose records must wait: what they wait for has committed records not yet read."""
        awaited = {tp: TopicPartition(self.waits_for[tp.topic], tp.partition)
                   for tp in batches if tp.topic in self.waits_for}
        if not awaited:
            return set()
        ends = await self.consumer.end_offsets(list(set(awaited.values())))
        return {tp for tp, other in awaited.items() if await self.consumer.position(other) < ends[other]}

    async def process(self, batches: dict[TopicPartition, list]) -> list[Any]:
        waiting = await self._waiting(batches)
        ordered = sorted(batches.items(), key=lambda item: item[0].topic in self.waits_for)
        offsets, touched, results = {}, set(), []
        now = utcnow()
        self._sends = []
        async with self.producer.transaction():
            for tp, messages in ordered:
                if tp.partition not in self.owned or tp not in self.consumer.assignment():
                    continue  # revoked meanwhile, or not restored yet: read again once it is
                if tp in waiting:
                    DEFERRED.labels(self.group, tp.topic).inc()
                    self.consumer.seek(tp, messages[0].offset)
                    continue
                for message in messages:
                    user, result = await self.handle(tp, message, now)
                    if user is not None:
                        touched.add((tp.partition, user))
                    results.append(result)
                offsets[tp] = messages[-1].offset + 1
            for partition, user in touched:
                value = json.dumps(self.state(partition, user).to_dict(), separators=(",", ":")).encode()
                await self.send(self.state_topic, value, key=user.encode(), partition=partition)
            # A record the broker refused (too large, say) fails its future only: the commit would
            # still go through, offsets without that output. So every send is awaited first.
            await asyncio.gather(*self._sends)
            if offsets:
                await self.producer.send_offsets_to_transaction(offsets, self.group)
        return results

    # -- writing, inside the open transaction -------------------------------------------------
    async def send(self, topic: str, value: bytes, *, key: bytes, headers=None, partition: int | None = None) -> None:
        self._sends.append(await self.producer.send(topic, value, key=key, headers=headers, partition=partition))

    async def publish(self, topic: str, event: Event, key: str, partition: int | None = None) -> None:
        record = self.signer.sign(to_record(event, key=key, source=self.source))
        await self.send(topic, record.value, key=record.key, headers=record.headers, partition=partition)

    async def read(self, tp: TopicPartition, message) -> tuple[Event | None, Exception | None]:
        """The record if our keys signed it and it is one of ours; otherwise why not, after setting it
        aside (inside the open transaction, so it is dead-lettered exactly when the batch commits)."""
        try:
            self.keyring.verify(message.key, message.value, message.headers)
            return from_record(message.key, message.value, message.headers), None
        except (BadSignature, UnreadableRecord) as exc:
            await self.dead_letter(tp, message, str(exc))
            return None, exc

    async def dead_letter(self, tp: TopicPartition, message, reason: str) -> None:
        letter = dead_letter(message.key, message.value, message.headers, reason=reason, topic=tp.topic,
                             partition=tp.partition, offset=message.offset, service=self.source.rsplit("/", 1)[-1])
        await self.send(topics.DEAD_LETTER, letter.value, key=letter.key, headers=letter.headers)
