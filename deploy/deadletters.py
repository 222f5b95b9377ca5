"""Operator tools for the dead-letter topic: list what was set aside and why, and replay it."""
from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared import topics
from shared.deadletter import REASON, SERVICE, SOURCE


@dataclass(frozen=True)
class DeadLetter:
    offset: int
    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def meta(self) -> dict[str, str]:
        return {name: raw.decode(errors="replace") for name, raw in self.headers if name.startswith("points-dlq-")}

    @property
    def reason(self) -> str:
        return self.meta.get(REASON, "")

    @property
    def service(self) -> str:
        return self.meta.get(SERVICE, "")

    @property
    def source(self) -> tuple[str, int, int]:
        topic, partition, offset = self.meta.get(SOURCE, "?/0/0").rsplit("/", 2)
        return topic, int(partition), int(offset)

    def original(self) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        return self.key, self.value, [(n, v) for n, v in self.headers if not n.startswith("points-dlq-")]


async def read_all(bootstrap: str) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(topics.DEAD_LETTER, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    letters = []
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        pending = {tp for tp, end in ends.items() if end > 0}
        while pending:
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                letters += [DeadLetter(m.offset, tp.partition, m.key or b"", m.value or b"",
                                       [(n, bytes(v)) for n, v in m.headers]) for m in messages]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return sorted(letters, key=lambda letter: (letter.partition, letter.offset))


async def replay(bootstrap: str, letters: list[DeadLetter]) -> int:
    """Publish each letter's original record to the topic it came from, for its consumers to try again."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for letter in letters:
            key, value, headers = letter.original()
            await producer.send_and_wait(letter.source[0], value, key=key or None, headers=headers)
    finally:
        await producer.stop()
    return len(letters)
