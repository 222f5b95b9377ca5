"""Kafka adapter of the gateway: a record is acknowledged to a client only after the broker has it."""
from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.ingest.problems import Problem
from shared.envelope import to_record
from shared.events import Event
from shared.signing import Signer

SOURCE = "/points/ingest"
log = logging.getLogger("points.ingest")


class KafkaPublisher:
    def __init__(self, bootstrap: str, signer: Signer, timeout: float = 5.0):
        self._signer = signer
        self._timeout = timeout
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

    async def reachable(self, timeout: float = 2.0) -> bool:
        """Whether a broker answers a metadata request now: a started producer may have lost them all."""
        if not self.started:
            return False
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout)
        except Exception:
            return False
        return True

    async def publish(self, topic: str, event: Event, *, key: str) -> None:
        record = self._signer.sign(to_record(event, key=key, source=SOURCE))
        # With the broker down a client hears 503 in seconds rather than waiting out every retry.
        # A record that times out here may still be stored later: the caller acknowledged nothing,
        # and its retry (same nonce or key) publishes the same record, which consumers apply once.
        await asyncio.wait_for(
            self._producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers), self._timeout)


async def publish_or_503(publisher: KafkaPublisher, topic: str, event: Event, *, key: str, what: str) -> None:
    """Publish, or answer 503: a broker that did not acknowledge means nothing was stored. Only Kafka's
    failures are 503 kafka-unavailable; anything else is our defect and answers 500."""
    try:
        await publisher.publish(topic, event, key=key)
    except (KafkaError, asyncio.TimeoutError, ConnectionError) as exc:
        log.error("points.error", extra={"operation": "publish", "topic": topic,
                                         "error_message": f"{type(exc).__name__}: {exc}"})
        raise Problem(503, "kafka-unavailable", f"The {what} could not be stored; retry with the same "
                      "nonce or Idempotency-Key.", headers={"Retry-After": "1"}) from exc
