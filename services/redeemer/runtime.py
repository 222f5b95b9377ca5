"""The redeemer's Kafka side: read-process-write in Kafka transactions.

Each batch is one transaction: the ledger and coupon records it decides, the answers, the
changed accounts (to a compacted changelog) and the consumed offsets commit together or not at
all. So a crash between steps can never leave a debit without its coupon, a coupon without its
debit, or an answer without what it announces; after a crash the accounts are restored from the
changelog and the inputs are read again from the last committed transaction.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import Counter, Histogram

from services.redeemer.account import Account
from shared import topics
from shared.commands import Command
from shared.coupon_codes import CouponKeys
from shared.deadletter import dead_letter
from shared.envelope import UnreadableRecord, from_record, to_record
from shared.events import CouponIssued, EventDecided, utcnow
from shared.signing import BadSignature, Keyring, Signer

log = logging.getLogger("points.redeemer")
GROUP = "points-redeemer"
SOURCE = "/points/redeemer"

ANSWERS = Counter("redeemer_answers_total", "Commands answered", ["command", "outcome"])
DEFERRED = Counter("redeemer_commands_deferred_total", "Command batches held back until the ledger caught up")
DEAD = Counter("redeemer_dead_lettered_records_total", "Untrusted or unreadable records set aside", ["topic"])
TRANSACTION_SECONDS = Histogram("redeemer_transaction_seconds", "Time to decide and commit one batch")


class _Restore(ConsumerRebalanceListener):
    def __init__(self, redeemer: "Redeemer"):
        self.redeemer = redeemer

    async def on_partitions_revoked(self, revoked) -> None:
        self.redeemer.forget({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned) -> None:
        await self.redeemer.restore({tp.partition for tp in assigned})


class Redeemer:
    def __init__(self, bootstrap: str, *, signer: Signer, keyring: Keyring, keys: CouponKeys, instance: str):
        self.bootstrap, self.signer, self.keyring, self.keys = bootstrap, signer, keyring, keys
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest", max_poll_records=500)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, transactional_id=f"{GROUP}-{instance}", enable_idempotence=True, acks="all")
        # partition -> user -> account, for the partitions this instance owns
        self.accounts: dict[int, dict[str, Account]] = defaultdict(dict)
        self.running = False

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe([topics.LEDGER, topics.COMMANDS], listener=_Restore(self))
        self.running = True

    async def stop(self) -> None:
        self.running = False
        await self.consumer.stop()
        await self.producer.stop()

    # -- state ------------------------------------------------------------------------------
    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.accounts.pop(partition, None)

    async def restore(self, partitions: set[int]) -> None:
        """Read the compacted changelog of these partitions to its end: the accounts as last committed."""
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                  isolation_level="read_committed", group_id=None)
        await reader.start()
        try:
            tps = [TopicPartition(topics.REDEEMER_STATE, p) for p in partitions]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            for tp in tps:
                self.accounts[tp.partition] = {}
            remaining = {tp for tp in tps if ends[tp] > 0}
            while remaining:
                for tp, messages in (await reader.getmany(*remaining, timeout_ms=500)).items():
                    for message in messages:
                        self.accounts[tp.partition][message.key.decode()] = Account.from_dict(json.loads(message.value))
                    if await reader.position(tp) >= ends[tp]:
                        remaining.discard(tp)
                for tp in list(remaining):
                    if await reader.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        finally:
            await reader.stop()
        log.info("accounts restored", extra={"partitions": sorted(partitions),
                                              "accounts": sum(len(self.accounts[p]) for p in partitions)})

    async def _recover(self) -> None:
        """After a failed transaction: back to the last committed state and offsets."""
        assigned = self.consumer.assignment()
        await self.restore({tp.partition for tp in assigned})
        for tp in assigned:
            committed = await self.consumer.committed(tp)
            if committed is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)

    def account(self, partition: int, user_id: str) -> Account:
        return self.accounts[partition].setdefault(user_id, Account())

    # -- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        while self.running:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=500)
            if not batches:
                continue
            try:
                with TRANSACTION_SECONDS.time():
                    await self.process(batches)
            except Exception:
                log.exception("transaction failed; restoring the last committed state")
                await self._recover()

    async def _ledger_lagging(self, batches: dict[TopicPartition, list]) -> set[int]:
        """Partitions whose commands must wait: their ledger has committed records not yet read."""
        ledgers = [TopicPartition(topics.LEDGER, tp.partition) for tp in batches if tp.topic == topics.COMMANDS]
        if not ledgers:
            return set()
        # Asked of the broker now, not remembered from the last fetch: with read_committed this is
        # the last stable offset, so a credit committed just before the command is never missed.
        ends = await self.consumer.end_offsets(ledgers)
        return {tp.partition for tp in ledgers if await self.consumer.position(tp) < ends[tp]}

    async def process(self, batches: dict[TopicPartition, list]) -> None:
        # Credits first, and commands only once the ledger is read to its end: a redemption must
        # see every credit that was in the ledger when it arrived.
        ordered = sorted(batches.items(), key=lambda item: item[0].topic != topics.LEDGER)
        offsets, touched = {}, set()
        async with self.producer.transaction():
            lagging = None
            for tp, messages in ordered:
                if tp.topic == topics.COMMANDS and lagging is None:
                    lagging = await self._ledger_lagging(batches)
                if tp.topic == topics.COMMANDS and tp.partition in lagging:
                    DEFERRED.inc()
                    self.consumer.seek(tp, messages[0].offset)
                    continue
                for message in messages:
                    await self._one(tp, message, touched)
                offsets[tp] = messages[-1].offset + 1
            for partition, user_id in touched:
                state = json.dumps(self.account(partition, user_id).to_dict(), separators=(",", ":")).encode()
                await self.producer.send(topics.REDEEMER_STATE, state, key=user_id.encode(), partition=partition)
            if offsets:
                await self.producer.send_offsets_to_transaction(offsets, GROUP)

    async def _one(self, tp: TopicPartition, message, touched: set) -> None:
        try:
            self.keyring.verify(message.key, message.value, message.headers)
            record = from_record(message.key, message.value, message.headers)
        except (BadSignature, UnreadableRecord) as exc:
            DEAD.labels(tp.topic).inc()
            letter = dead_letter(message.key, message.value, message.headers, reason=str(exc), topic=tp.topic,
                                 partition=tp.partition, offset=message.offset, service="redeemer")
            await self.producer.send(topics.DEAD_LETTER, letter.value, key=letter.key, headers=letter.headers)
            return
        if isinstance(record, EventDecided):
            self.account(tp.partition, record.user_id).apply_ledger(record)
            touched.add((tp.partition, record.user_id))
        elif isinstance(record, Command):
            account = self.account(tp.partition, record.user_id)
            events, answer = account.handle(record, self.keys, utcnow())
            for event in events:
                await self._publish(topics.LEDGER if isinstance(event, EventDecided) else topics.COUPONS, event,
                                    record.user_id, tp.partition)
            await self._publish(topics.REPLIES, answer, record.user_id, tp.partition)
            touched.add((tp.partition, record.user_id))
            ANSWERS.labels(answer.command, answer.outcome).inc()
            if any(isinstance(e, CouponIssued) for e in events):
                log.info("points.coupon.redeemed", extra={
                    "user_id": record.user_id, "template_id": answer.detail.get("template_id"),
                    "coupon_id": answer.detail.get("coupon_id"), "points_cost": answer.detail.get("points_cost")})

    async def _publish(self, topic: str, event, user_id: str, partition: int) -> None:
        record = self.signer.sign(to_record(event, key=user_id, source=SOURCE))
        # Same partition number as the input: every topic has the same count, keyed by user.
        await self.producer.send(topic, record.value, key=record.key, headers=record.headers, partition=partition)
