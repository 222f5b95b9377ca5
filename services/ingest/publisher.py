"""Kafka adapter of the gateway: a record is acknowledged to a client only after the broker has it."""
from __future__ import annotations

from aiokafka import AIOKafkaProducer

from shared.envelope import to_record
from shared.events import Event
from shared.signing import Signer

SOURCE = "/points/ingest"


class KafkaPublisher:
    def __init__(self, bootstrap: str, signer: Signer):
        self._signer = signer
        # acks=all + idempotence: a broker-acknowledged record survives, and a retried send
        # inside the producer cannot write it twice.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
            linger_ms=2, request_timeout_ms=10000,
        )
        self.started = False

    async def start(self) -> None:
        await self._producer.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        await self._producer.stop()

    async def publish(self, topic: str, event: Event, *, key: str) -> None:
        record = self._signer.sign(to_record(event, key=key, source=SOURCE))
        await self._producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
