"""Read-process-write in Kafka transactions, with per-user state in a compacted topic.

The validator and the redeemer share this loop. Each input partition has its own transactional
producer (`<group>-<partition>`), and each batch of a partition is one transaction: whatever
records handling it produced, the users' changed state and the consumed offsets commit together
or not at all. A crash, kill -9 included, aborts the open transaction.

Whoever is assigned a partition first starts that partition's producer, which fences every earlier
owner of it (an instance that crashed, or one that lost the partition in a rebalance and does not
know it yet): the broker aborts the earlier owner's open transaction and refuses its later ones.
Only then is the partition's state read back from the compacted topic and its input read from the
last committed offset. So two instances never both decide for one user, and an input is handled
exactly once as far as anything downstream (read_committed) can tell.
"""
from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import ProducerFenced, TransactionalIdAuthorizationFailed
from prometheus_client import Counter, Histogram

from shared import topics
from shared.changelog import read_to_end
from shared.consuming import FETCH_MAX_WAIT_MS, LINGER_MS, URGENT_LINGER_MS, fill, merge
from shared.deadletter import dead_letter
from shared.envelope import to_record
from shared.events import Event, utcnow
from shared.signing import UNTRUSTED, Keyring, Signer, open_trusted

log = logging.getLogger("points.transactional")
State = TypeVar("State")

TRANSACTIONS = Histogram("points_transaction_seconds", "Time to handle and commit one batch", ["group"])
ABORTED = Counter("points_transactions_aborted_total", "Partitions' batches rolled back and read again after a "
                  "failure", ["group"])
FENCED = Counter("points_partitions_fenced_total", "Partitions given up because another instance took them over",
                 ["group"])
# How long batches may keep failing with none committing before the process exits, for a fresh
# one to take over: longer than a broker's restart or a leader election, which the retries ride out.
GIVE_UP_AFTER_SECONDS = 120.0
# How long a partition the group still gives this instance stays given up after another instance
# fenced it: past this, that other instance was a stale owner (paused, or between a revocation and
# its new assignment), and this one takes the partition back rather than leave it unhandled.
FENCED_GRACE_SECONDS = 15.0
# How long a batch waits for the unread records its records wait for before it is put off instead.
CATCH_UP_MS = 50
DEFERRED = Counter("points_batches_deferred_total", "Partitions' records held back until a topic they wait for "
                   "was read to its end", ["group", "topic"])
FENCING_ERRORS = (ProducerFenced, TransactionalIdAuthorizationFailed)
# How many users' states are decoded between two turns of the event loop while restoring.
RESTORE_SLICE = 2000


@dataclass
class _Transaction:
    """The transaction a partition's batch is handled in; sends go to its producer."""

    producer: AIOKafkaProducer
    sends: list[asyncio.Future] = field(default_factory=list)


# Partitions' batches run concurrently, each in its own task and so with its own value here.
_CURRENT: ContextVar[_Transaction] = ContextVar("points_transaction")


class _Rebalance(ConsumerRebalanceListener):
    """aiokafka runs these in its coordinator task, beside the loop: they take the batch lock, so a
    batch never runs on state that is being forgotten, and they leave the reading back to the loop."""

    def __init__(self, worker: "TransactionalWorker"):
        self.worker = worker

    async def on_partitions_revoked(self, revoked) -> None:
        # Until the new assignment, the loop starts nothing: the consumer still lists the old
        # partitions, and taking those over would fence whoever the group gives them to.
        self.worker.rebalancing = True
        async with self.worker.batch_lock:  # the batches in hand commit (or abort) first
            await self.worker.release({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned) -> None:
        # The partitions are taken over by the loop, not here: aiokafka sends no heartbeat while
        # this runs, and a state that takes longer to read back than the session timeout would get
        # this member expelled, and the rejoin would read it all again, round after round.
        async with self.worker.batch_lock:
            self.worker.held.clear()
            self.worker.generation += 1
            self.worker.rebalancing = False
            self.worker.fenced.clear()


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
    # Inputs whose senders wait on the answer: a batch holding one of their records lingers no more
    # than URGENT_LINGER_MS (shared/consuming.py).
    urgent: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, bootstrap: str, *, signer: Signer, keyring: Keyring):
        self.bootstrap, self.signer, self.keyring = bootstrap, signer, keyring
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=self.group, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest", max_poll_records=500,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            partition_assignment_strategy=(RangePartitionAssignor,),
            # A crashed instance's partitions move on after 10 s.
            session_timeout_ms=10000, heartbeat_interval_ms=3000)
        # Asks the ends of the topics others wait for. Not the group consumer: a broker answers one
        # connection's requests in order, so there the question waited behind the fetch in flight,
        # up to FETCH_MAX_WAIT_MS, on every batch (half of a redemption's time when idle).
        self.ends = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                     isolation_level="read_committed")
        # partition -> its transactional producer, for the partitions this instance was assigned
        self.producers: dict[int, AIOKafkaProducer] = {}
        # partition -> user -> state, for the partitions this instance owns
        self.states: dict[int, dict[str, State]] = defaultdict(dict)
        # partition -> input -> the offset to read on from, for batches that changed nothing and sent
        # nothing, and so were not worth a transaction of their own: committed with the partition's next.
        self.unsent_offsets: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
        # input -> records read but held back until what they wait for has been read (they are
        # handled at the head of a later batch: seeking back would have them read again only once
        # the fetch in flight returned, up to FETCH_MAX_WAIT_MS later).
        self.held: dict[TopicPartition, list] = {}
        # Partitions whose producer fenced the earlier owners and whose state was read back since:
        # the only ones handled.
        self.owned: set[int] = set()
        # Partitions another instance took over while this one still had them, and when: left alone
        # until the group assigns them again or FENCED_GRACE_SECONDS pass (taking them back at once
        # would fence the rightful owner).
        self.fenced: dict[int, float] = {}
        self.batch_lock = asyncio.Lock()
        # Counts assignments: records fetched under an earlier one are not handled.
        self.generation = 0
        # Between a revocation and the assignment that follows it.
        self.rebalancing = False
        self.running = False

    # A user's state: built with no arguments, stored as JSON through from_dict / to_dict.
    state_class: ClassVar[type]

    # -- what a service says ------------------------------------------------------------------
    @abstractmethod
    async def handle(self, tp: TopicPartition, message, now: datetime) -> tuple[str | None, Any]:
        """Handle one input inside its partition's open transaction: the user whose state changed (or
        None), and anything `committed` should see once the transaction is through."""

    def committed(self, partition: int, results: list[Any]) -> None:
        """After a partition's transaction committed: count and log, so an aborted batch is never
        counted twice."""

    def rolled_back(self, partition: int) -> None:
        """After a partition's transaction was aborted, before its batch is read again."""

    def check(self) -> None:
        """Raise when the worker can no longer work correctly, so the process stops and is restarted."""

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.ends.start()
        if self.waits_for:
            # Its first question waits for the cluster's metadata: asked now rather than by the first batch.
            await self.ends.end_offsets([TopicPartition(topic, 0) for topic in set(self.waits_for.values())])
        await self.consumer.start()
        self.consumer.subscribe(list(self.inputs), listener=_Rebalance(self))
        self.running = True

    async def stop(self) -> None:
        self.running = False
        await self.consumer.stop()  # revokes, which stops the partitions' producers
        await self.release(set(self.producers))
        await self.ends.stop()

    def ready(self) -> bool:
        """Working: in the group, with the state of every assigned partition restored."""
        assigned = {tp.partition for tp in self.consumer.assignment()}
        return self.running and bool(assigned) and assigned <= self.owned

    # -- partitions ---------------------------------------------------------------------------
    def state(self, partition: int, user_id: str) -> State:
        if partition not in self.owned:
            raise RuntimeError(f"partition {partition} is not owned (state not restored)")
        owned = self.states[partition]
        if user_id not in owned:
            owned[user_id] = self.state_class()
        return owned[user_id]

    async def release(self, partitions: set[int]) -> None:
        """Forget the partitions' state and stop their producers."""
        for partition in partitions:
            self.owned.discard(partition)
            self.states.pop(partition, None)
        self._forget_unhandled(partitions)
        producers = [self.producers.pop(p) for p in partitions if p in self.producers]
        await asyncio.gather(*(producer.stop() for producer in producers), return_exceptions=True)

    async def _fence_earlier_owners(self, partition: int) -> None:
        """A fresh producer for the partition; once it has its producer id, no earlier owner's
        transaction is open or can commit."""
        old = self.producers.pop(partition, None)
        if old is not None:
            await old.stop()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, transactional_id=f"{self.group}-{partition}",
            # No linger: a batch's records are all handed over before the transaction first waits, so
            # they share a request anyway, and lingering only held every commit back 5 ms.
            enable_idempotence=True, acks="all", linger_ms=0)
        await producer.start()
        try:
            async with producer.transaction():  # empty: waits for the producer id, which does the fencing
                pass
        except BaseException:
            await producer.stop()
            raise
        self.producers[partition] = producer

    async def take_over(self, partitions: set[int]) -> None:
        """Fence the partitions' earlier owners, read their state back and rewind their input to
        the last committed offsets."""
        await self.release(partitions)
        await asyncio.gather(*(self._fence_earlier_owners(p) for p in partitions))
        stored = await read_to_end(self.bootstrap, self.state_topic, partitions)
        for partition, values in stored.items():
            states = self.states[partition] = {}
            for count, (key, value) in enumerate(values.items(), 1):
                states[key.decode()] = self.state_class.from_dict(orjson.loads(value))
                if count % RESTORE_SLICE == 0:
                    await asyncio.sleep(0)  # heartbeats and the health endpoints go on meanwhile
        await self._rewind(partitions)
        self.owned |= partitions
        log.info("partitions taken over", extra={"group": self.group, "partitions": sorted(partitions),
                                                   "users": sum(len(self.states[p]) for p in partitions)})

    async def _rewind(self, partitions: set[int]) -> None:
        """Read the partitions on from their last committed offsets."""
        self._forget_unhandled(partitions)
        for tp in self.consumer.assignment():
            if tp.partition in partitions:
                committed = await self.consumer.committed(tp)
                if committed is None:
                    await self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, committed)

    def _forget_unhandled(self, partitions: set[int]) -> None:
        """What was read past the partitions' last commit and not yet committed: read again from it."""
        for partition in partitions:
            self.unsent_offsets.pop(partition, None)
        for tp in [tp for tp in self.held if tp.partition in partitions]:
            del self.held[tp]

    async def _give_up(self, partition: int) -> None:
        FENCED.labels(self.group).inc()
        log.warning("another instance took over a partition; leaving it to that instance",
                    extra={"group": self.group, "partition": partition})
        self.fenced[partition] = time.monotonic()
        await self.release({partition})

    # -- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        aborts_in_a_row, failing_since = 0, None
        while self.running:
            self.check()
            if self.rebalancing:
                await asyncio.sleep(0.05)
                continue
            now = time.monotonic()
            for partition, since in list(self.fenced.items()):
                if now - since > FENCED_GRACE_SECONDS:
                    del self.fenced[partition]
            unowned = {tp.partition for tp in self.consumer.assignment()} - self.owned - set(self.fenced)
            if unowned:
                await self._take_over_assigned(unowned)
            generation = self.generation
            # Records held back are tried again at once, whatever else comes.
            batches = await self.consumer.getmany(timeout_ms=URGENT_LINGER_MS if self.held else 200, max_records=500)
            for tp, messages in self.held.items():
                batches[tp] = messages + batches.get(tp, [])
            self.held = {}
            if not batches:
                if any(self.unsent_offsets.values()):
                    async with self.batch_lock:
                        await self._commit_unsent_offsets()
                continue
            batches = await fill(self.consumer, batches, max_records=500, linger_ms=LINGER_MS, urgent=self.urgent,
                                 urgent_linger_ms=URGENT_LINGER_MS)
            waiting = await self._read_awaited(batches)
            if generation != self.generation or self.rebalancing:
                # A rebalance while these were read: some may predate it, some not. None is handled;
                # every partition reads on from its last commit instead.
                async with self.batch_lock:
                    await self._read_on_from_commits()
                continue
            failed: dict[int, BaseException] = {}
            async with self.batch_lock:
                with TRANSACTIONS.labels(self.group).time():
                    # The answer before the lock holds unless a rebalance came while it was awaited.
                    outcomes = await self.process(batches, waiting if generation == self.generation else None)
                for partition, outcome in outcomes.items():
                    if isinstance(outcome, FENCING_ERRORS):
                        await self._give_up(partition)
                    elif isinstance(outcome, BaseException):
                        failed[partition] = outcome
                    else:
                        self.committed(partition, outcome)
            if not failed:
                aborts_in_a_row, failing_since = 0, None
                continue
            ABORTED.labels(self.group).inc(len(failed))
            aborts_in_a_row += 1
            failing_since = failing_since or time.monotonic()
            first = next(iter(failed.values()))
            if time.monotonic() - failing_since > GIVE_UP_AFTER_SECONDS:
                log.error("transactions keep failing; stopping so a fresh process takes over",
                          extra={"group": self.group, "aborts": aborts_in_a_row})
                raise first
            log.error("transaction failed; taking the partitions over again from their last commit",
                      exc_info=first, extra={"group": self.group, "partitions": sorted(failed)})
            for partition in failed:
                self.rolled_back(partition)
            await asyncio.sleep(min(0.25 * 2 ** aborts_in_a_row, 5.0))  # a broker away for a moment
            await self._take_over_assigned(set(failed))

    async def _commit_unsent_offsets(self) -> None:
        """Once the input is quiet, commit what batches that were not worth a transaction read, so
        the group's lag comes back to 0."""
        async def commit(partition: int) -> None:
            offsets = dict(self.unsent_offsets[partition])
            producer = self.producers[partition]
            async with producer.transaction():
                await producer.send_offsets_to_transaction(offsets, self.group)
            for tp, offset in offsets.items():  # unless a batch read on meanwhile
                if self.unsent_offsets[partition].get(tp) == offset:
                    del self.unsent_offsets[partition][tp]

        partitions = [p for p, offsets in self.unsent_offsets.items() if offsets and p in self.owned]
        outcomes = await asyncio.gather(*(commit(p) for p in partitions), return_exceptions=True)
        for partition, outcome in zip(partitions, outcomes):
            if isinstance(outcome, FENCING_ERRORS):
                await self._give_up(partition)
            elif isinstance(outcome, BaseException):  # tried again when next quiet
                log.warning("committing read offsets failed", exc_info=outcome,
                            extra={"group": self.group, "partition": partition})

    async def _read_on_from_commits(self) -> None:
        """Every owned partition reads on from its last commit; one that cannot be rewound now is
        given up, so it is taken over again (and rewound then) before anything of it is handled."""
        try:
            await self._rewind(self.owned)
        except Exception:
            log.exception("rewinding to the last commits failed; taking the partitions over again",
                          extra={"group": self.group, "partitions": sorted(self.owned)})
            await self.release(set(self.owned))

    async def _take_over_assigned(self, partitions: set[int]) -> None:
        """Take over those of the partitions the group still gives this instance: after an
        assignment, or again after their transaction failed."""
        async with self.batch_lock:
            partitions &= {tp.partition for tp in self.consumer.assignment()}
            try:
                await self.take_over(partitions)
            except FENCING_ERRORS:
                for partition in partitions:
                    await self._give_up(partition)
            except Exception:
                # Not owned until taken over: the loop retries before reading on.
                log.exception("taking over partitions failed; will retry",
                              extra={"group": self.group, "partitions": sorted(partitions)})
                await self.release(partitions)
                await asyncio.sleep(1)

    async def _read_awaited(self, batches: dict[TopicPartition, list]) -> set[TopicPartition] | None:
        """Into `batches`, what its records wait for and the consumer has not read yet, when it comes
        within CATCH_UP_MS: most often it is on its way (the redeemer's own debits, coming back), and
        putting the records off to the next batch would cost their senders a whole batch more.

        Returns the input partitions that must wait when that is known already (nothing awaited, so
        nothing read since the broker was asked), None when `process` must ask again."""
        try:
            waiting = await self._waiting(batches)
        except Exception:
            return None  # asked again, and answered, before the batch is handled
        if not waiting:
            return waiting
        awaited = {TopicPartition(self.waits_for[tp.topic], tp.partition) for tp in waiting}
        merge(batches, await self.consumer.getmany(*awaited, timeout_ms=CATCH_UP_MS))
        return None

    async def _waiting(self, batches: dict[TopicPartition, list]) -> set[TopicPartition]:
        """Input partitions whose records must wait: what they wait for has committed records not yet read."""
        awaited = {tp: TopicPartition(self.waits_for[tp.topic], tp.partition)
                   for tp in batches if tp.topic in self.waits_for}
        if not awaited:
            return set()
        ends = await self.ends.end_offsets(list(set(awaited.values())))
        return {tp for tp, other in awaited.items() if await self.consumer.position(other) < ends[other]}

    async def process(self, batches: dict[TopicPartition, list],
                      waiting: set[TopicPartition] | None = None) -> dict[int, list[Any] | BaseException]:
        """Each partition's records in that partition's transaction, the partitions concurrently:
        partition -> what handling returned, or why its transaction was aborted. `waiting`: the input
        partitions whose records must wait, when asked since the batch was read; None to ask now."""
        try:
            if waiting is None:
                waiting = await self._waiting(batches)
        except Exception as exc:  # a broker away while asked for the end of a topic: the batch waits
            return {tp.partition: exc for tp in batches if tp.partition in self.owned}
        work: dict[int, list[tuple[TopicPartition, list]]] = defaultdict(list)
        for tp, messages in sorted(batches.items(), key=lambda item: item[0].topic in self.waits_for):
            if tp.partition not in self.owned or tp not in self.consumer.assignment():
                continue  # revoked meanwhile, or not taken over yet: read again once it is
            if tp in waiting:
                DEFERRED.labels(self.group, tp.topic).inc()
                self.held[tp] = messages
                continue
            work[tp.partition].append((tp, messages))
        now = utcnow()
        partitions = list(work)
        outcomes = await asyncio.gather(*(self._transact(p, work[p], now) for p in partitions),
                                        return_exceptions=True)
        return dict(zip(partitions, outcomes))

    async def _transact(self, partition: int, work: list[tuple[TopicPartition, list]], now: datetime) -> list[Any]:
        transaction = _Transaction(self.producers[partition])
        _CURRENT.set(transaction)
        offsets, touched, results = {}, set(), []
        async with transaction.producer.transaction():
            for tp, messages in work:
                for message in messages:
                    user, result = await self.handle(tp, message, now)
                    if user is not None:
                        touched.add(user)
                    results.append(result)
                offsets[tp] = messages[-1].offset + 1
            unsent = self.unsent_offsets[partition]
            if not touched and not transaction.sends:
                # Nothing to write (a redeemer reading back its own debits, say): no transaction, the
                # empty one commits without a word to the broker. Read again after a crash, these
                # records change nothing again.
                unsent.update(offsets)
                return results
            for user in touched:
                value = orjson.dumps(self.state(partition, user).to_dict())
                await self.send(self.state_topic, value, key=user.encode(), partition=partition)
            # A record the broker refused (too large, say) fails its future only: the commit would
            # still go through, offsets without that output. So every send is awaited first. (Sending
            # the offsets meanwhile was slower: their request, refused while the last transaction's
            # markers were written, is retried after aiokafka's 100 ms, not 20.)
            await asyncio.gather(*transaction.sends)
            await transaction.producer.send_offsets_to_transaction({**unsent, **offsets}, self.group)
        unsent.clear()
        return results

    # -- writing, inside the open transaction -------------------------------------------------
    async def send(self, topic: str, value: bytes, *, key: bytes, headers=None, partition: int | None = None) -> None:
        transaction = _CURRENT.get()
        transaction.sends.append(await transaction.producer.send(topic, value, key=key, headers=headers,
                                                                 partition=partition))

    async def publish(self, topic: str, event: Event, key: str, partition: int | None = None) -> None:
        record = self.signer.sign(to_record(event, key=key, source=self.source))
        await self.send(topic, record.value, key=record.key, headers=record.headers, partition=partition)

    async def read(self, tp: TopicPartition, message) -> tuple[Event | None, Exception | None]:
        """The record if our keys signed it and it is one of ours; otherwise why not, after setting it
        aside (inside the open transaction, so it is dead-lettered exactly when the batch commits)."""
        try:
            return open_trusted(self.keyring, message.key, message.value, message.headers), None
        except UNTRUSTED as exc:
            await self.dead_letter(tp, message, str(exc))
            return None, exc

    async def dead_letter(self, tp: TopicPartition, message, reason: str) -> None:
        letter = dead_letter(message.key, message.value, message.headers, reason=reason, topic=tp.topic,
                             partition=tp.partition, offset=message.offset, service=self.source.rsplit("/", 1)[-1])
        await self.send(topics.DEAD_LETTER, letter.value, key=letter.key, headers=letter.headers)
