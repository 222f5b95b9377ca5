"""Kafka adapter of the gateway: a record is acknowledged to a client only after the broker has it."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (InvalidProducerEpoch, InvalidProducerIdMapping, KafkaError, OutOfOrderSequenceNumber,
                             UnknownProducerId)
from prometheus_client import Counter

from services.ingest.problems import Problem
from shared.envelope import to_record
from shared.events import Event
from shared.signing import Signer

SOURCE = "/points/ingest"
log = logging.getLogger("points.ingest")


# The broker no longer accepts this producer's sequence (a batch given up on while the broker was
# away, a broker restarted): the producer can never send again, and aiokafka does not reset it.
_SPENT_PRODUCER = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, InvalidProducerIdMapping)
PRODUCERS_REPLACED = Counter("ingest_producers_replaced_total",
                             "Kafka producers replaced after the broker stopped accepting their sequence")


class KafkaPublisher:
    def __init__(self, bootstrap: str, signer: Signer, timeout: float = 5.0):
        self._bootstrap = bootstrap
        self._signer = signer
        self._timeout = timeout
        self._producer = self._new_producer()
        self._replacing = asyncio.Lock()
        self.started = False

    def _new_producer(self) -> AIOKafkaProducer:
        # acks=all + idempotence: a broker-acknowledged record survives, and a retried send
        # inside the producer cannot write it twice.
        return AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=2, request_timeout_ms=10000)

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
        producer = self._producer
        try:
            # asyncio.timeout rather than wait_for: no extra task per record.
            async with asyncio.timeout(self._timeout):
                await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
        except _SPENT_PRODUCER:
            await self._replace(producer)
            raise

    async def _replace(self, spent: AIOKafkaProducer) -> None:
        """A new producer (a new producer id) in place of a spent one; the caller's retry sends the same
        record again, which every consumer applies once (they key on the event or command id)."""
        async with self._replacing:
            if self._producer is not spent:
                return  # another request replaced it already
            fresh = self._new_producer()
            await fresh.start()
            self._producer = fresh
            PRODUCERS_REPLACED.inc()
            log.warning("points.kafka.producer_replaced", extra={"reason": "broker refused its sequence"})
        with contextlib.suppress(Exception):
            await spent.stop()


async def publish_or_503(publisher: KafkaPublisher, topic: str, event: Event, *, key: str, what: str) -> None:
    """Publish, or answer 503: a broker that did not acknowledge means nothing was stored. Only Kafka's
    failures are 503 kafka-unavailable; anything else is our defect and answers 500."""
    with kafka_or_503(what, topic=topic):
        await publisher.publish(topic, event, key=key)


@contextlib.contextmanager
def kafka_or_503(what: str, *, topic: str, operation: str = "publish") -> Iterator[None]:
    """Kafka's failures inside as 503 kafka-unavailable: nothing of the `what` was stored."""
    try:
        yield
    except (KafkaError, asyncio.TimeoutError, ConnectionError) as exc:
        log.error("points.error", extra={"operation": operation, "topic": topic,
                                         "error_message": f"{type(exc).__name__}: {exc}"})
        raise Problem(503, "kafka-unavailable", f"The {what} could not be stored; retry with the same "
                      "nonce or Idempotency-Key.", headers={"Retry-After": "1"}) from exc
