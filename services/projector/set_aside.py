"""Where the projector puts a record it cannot apply: the dead-letter topic, and, when the record
looks like an attack, a fraud insight on the log (so the review console and the alerts see it)."""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from uuid import UUID, uuid5

from aiokafka import AIOKafkaProducer, TopicPartition

from shared import topics
from shared.deadletter import dead_letter
from shared.envelope import to_record
from shared.events import FraudInsightRaised
from shared.signing import Signer

log = logging.getLogger("points.projector")
SOURCE = "/points/projector"
_INSIGHT_IDS = UUID("9b7e1f0a-52c4-4e0b-a0d6-2f3c8e5d7a91")
# What the read models can hold as a user id (the gateway refuses longer subjects).
MAX_STORABLE_USER_ID = 255


def storable_user_id(key: bytes | None) -> str:
    """The record's user id if PostgreSQL can hold it, else a stable stand-in derived from it."""
    user = (key or b"").decode(errors="replace")
    if user and len(user) <= MAX_STORABLE_USER_ID and "\x00" not in user:
        return user
    return "unstorable:" + hashlib.sha256(key or b"").hexdigest()[:16]


def unstorable_record(key: bytes | None, reason: str, tp: TopicPartition, offset: int,
                      timestamp_ms: int) -> FraudInsightRaised:
    """A signed record our database refuses got past the gateway's checks: someone found a gap.

    Id and time follow from the record's position, so raising it again (a retry) changes nothing.
    """
    position = f"{tp.topic}/{tp.partition}/{offset}"
    return FraudInsightRaised(
        insight_id=uuid5(_INSIGHT_IDS, position), user_id=storable_user_id(key), insight_type="unstorable_record",
        severity="high", score=0, evidence={"reason": reason[:500], "source": position,
                                            "key_length": len(key or b"")},
        raised_at=datetime.fromtimestamp(timestamp_ms / 1000, timezone.utc))


class SetAside:
    def __init__(self, bootstrap: str, signer: Signer):
        self.signer = signer
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def put(self, tp: TopicPartition, message, reason: str, *, suspicious: bool) -> None:
        """Kept before the batch commits: a crash in between sets it aside again, never loses it."""
        letter = dead_letter(message.key, message.value, message.headers, reason=reason, topic=tp.topic,
                             partition=tp.partition, offset=message.offset, service="projector")
        sends = [await self.producer.send(topics.DEAD_LETTER, letter.value, key=letter.key, headers=letter.headers)]
        if suspicious:
            insight = unstorable_record(message.key, reason, tp, message.offset, message.timestamp)
            record = self.signer.sign(to_record(insight, key=insight.user_id, source=SOURCE))
            sends.append(await self.producer.send(topics.FRAUD, record.value, key=record.key,
                                                  headers=record.headers))
            log.warning("points.fraud.detected", extra={"user_id": insight.user_id, "insight_type": insight.insight_type,
                                                        "severity": insight.severity, "source": insight.evidence["source"]})
        for sent in sends:
            await sent
