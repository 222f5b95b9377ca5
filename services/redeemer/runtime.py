"""The redeemer's Kafka side: credits and coupon commands in, debits, coupons and answers out, in
Kafka transactions (shared/transactional.py) with each user's account in `points.redeemer.state`.

So a crash between steps can never leave a debit without its coupon, a coupon without its debit,
or an answer without what it announces; after a crash the accounts are restored from the
compacted topic and the inputs are read again from the last committed transaction.
"""
from __future__ import annotations

import logging
from datetime import datetime

from aiokafka import TopicPartition
from prometheus_client import Counter

from services.redeemer.account import Account
from shared import topics
from shared.commands import Command
from shared.coupon_codes import CouponKeys
from shared.events import CommandAnswered, EventDecided
from shared.signing import Keyring, Signer
from shared.transactional import TransactionalWorker

log = logging.getLogger("points.redeemer")

ANSWERS = Counter("redeemer_answers_total", "Commands answered", ["command", "outcome"])
DEAD = Counter("redeemer_dead_lettered_records_total", "Untrusted or unreadable records set aside", ["topic"])


class Redeemer(TransactionalWorker[Account]):
    group = "points-redeemer"
    source = "/points/redeemer"
    inputs = (topics.LEDGER, topics.COMMANDS)
    state_class = Account
    state_topic = topics.REDEEMER_STATE
    # A redemption must see every credit that was in the ledger when it arrived.
    waits_for = {topics.COMMANDS: topics.LEDGER}
    # A command's client waits on its answer: a batch holding one goes at once (but for a moment, to
    # gather the others of a burst), however long the credits before it would have waited for company.
    urgent = frozenset({topics.COMMANDS})

    def __init__(self, bootstrap: str, *, signer: Signer, keyring: Keyring, keys: CouponKeys):
        super().__init__(bootstrap, signer=signer, keyring=keyring)
        self.keys = keys

    async def handle(self, tp: TopicPartition, message, now: datetime) -> tuple[str | None, CommandAnswered | None]:
        record, refused = await self.read(tp, message)
        if refused is not None:
            DEAD.labels(tp.topic).inc()
            return None, None
        if isinstance(record, EventDecided):
            changed = self.state(tp.partition, record.user_id).apply_ledger(record)
            return (record.user_id if changed else None), None
        if not isinstance(record, Command):
            return None, None
        events, answer = self.state(tp.partition, record.user_id).handle(record, self.keys, now)
        # Same partition number as the input: every topic has the same count, keyed by user.
        for event in events:
            await self.publish(topics.LEDGER if isinstance(event, EventDecided) else topics.COUPONS, event,
                               record.user_id, tp.partition)
        await self.publish(topics.REPLIES, answer, record.user_id, tp.partition)
        return record.user_id, answer

    def committed(self, partition: int, results: list[CommandAnswered | None]) -> None:
        for answer in results:
            if answer is None:
                continue
            ANSWERS.labels(answer.command, answer.outcome).inc()
            if answer.command == "RedeemCoupon" and answer.outcome == "redeemed":
                log.info("points.coupon.redeemed", extra={
                    "user_id": answer.user_id, "template_id": answer.detail.get("template_id"),
                    "coupon_id": answer.detail.get("coupon_id"), "points_cost": answer.detail.get("points_cost")})
