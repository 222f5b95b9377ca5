"""The faust app. Submissions pass three owners in turn, each keyed by what it counts:

    points.events.submitted --(device)--> accounts per device --(IP)--> accounts per IP
        --(user)--> trust score and decision --> points.ledger (+ points.fraud)

so signals that span accounts come from state keyed by device or IP, and the decision from the
user's own state, each owned by exactly one partition. Admin verdicts and holds arrive on
points.reviews, keyed by user like the decisions they finish.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

import faust
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Histogram

from services.validator.review import finish_review, hold
from services.validator.rules import decide, untrusted_record
from services.validator.state import AccountBook, Context, UserState
from shared import topics
from shared.commands import HoldEvent, ReviewEvent
from shared.deadletter import dead_letter
from shared.envelope import UnreadableRecord, from_record, to_record
from shared.events import EventSubmitted, utcnow
from shared.ops_http import start_ops_server
from shared.settings import Settings, get_settings
from shared.signing import BadSignature

log = logging.getLogger("points.validator")
SOURCE = "/points/validator"
# Where outputs go: (topic name, key, value, headers), returning once the record is safely written.
Send = Callable[[str, bytes, bytes, list | None], Awaitable[None]]

DECISIONS = Counter("validator_decisions_total", "Decisions made", ["validation_status", "event_type"])
TRUST = Histogram("validator_trust_score", "Trust scores given", buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100))
LATENCY = Histogram("validator_decision_latency_seconds", "From receipt at the gateway to decision published",
                    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
INSIGHTS = Counter("validator_fraud_insights_total", "Fraud insights raised", ["insight_type", "severity"])
UNTRUSTED = Counter("validator_untrusted_records_total", "Records dead-lettered", ["reason"])
DUPLICATES = Counter("validator_duplicates_skipped_total", "Redelivered submissions already decided")
REVIEWS = Counter("validator_reviews_total", "Admin verdicts and holds applied", ["kind", "applied"])
RETRIES = Counter("validator_retries_total", "Attempts to handle a record again after a failure")


def _headers(message) -> list:
    raw = message.headers
    return list(raw.items() if isinstance(raw, Mapping) else raw or [])


def _annotated(event: EventSubmitted, context: Context) -> bytes:
    return json.dumps({"event": event.model_dump(mode="json"), "context": vars(context)}).encode()


def _read_annotated(value: bytes) -> tuple[EventSubmitted, Context]:
    raw = json.loads(value)
    return EventSubmitted.model_validate(raw["event"]), Context(**raw["context"])


def create_app(settings: Settings | None = None, *, send: Send | None = None) -> faust.App:
    """`send` stands in for the validator's own producer, so the agents can be tested without a broker."""
    settings = settings or get_settings()
    rules = settings.rule_set()
    app = faust.App(
        "points-validator",
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        table_cleanup_interval=60.0,
        # A replaced or crashed worker leaves the group in seconds, not after faust's default minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
    )

    def topic(name: str, internal: bool = False):
        return app.topic(name, key_serializer="raw", value_serializer="raw", internal=internal,
                         partitions=settings.topic_partitions if internal else None)

    submitted, reviews = topic(topics.SUBMITTED), topic(topics.REVIEWS)
    ledger, fraud, dead_letters = topic(topics.LEDGER), topic(topics.FRAUD), topic(topics.DEAD_LETTER)
    by_device = topic("points-validator-by-device", internal=True)
    by_ip = topic("points-validator-by-ip", internal=True)
    by_user = topic("points-validator-by-user", internal=True)
    signer, keyring = settings.signer(), settings.keyring()
    # Changelog-backed, so a restarted validator resumes with what it knew.
    users = app.Table("user-state", partitions=settings.topic_partitions)
    devices = app.Table("device-accounts", partitions=settings.topic_partitions)
    addresses = app.Table("ip-accounts", partitions=settings.topic_partitions)
    state = {"started": False}

    # Outputs go through a producer of our own whose send_and_wait returns only once the broker has
    # the record (acks=all); only then is the input acked or the user's state updated. faust's own
    # producer still writes the tables' changelogs.
    outputs: dict[str, AIOKafkaProducer] = {}
    starting = asyncio.Lock()

    async def produce(topic_name: str, key: bytes, value: bytes, headers) -> None:
        async with starting:  # agents run concurrently: one producer for all of them
            if "producer" not in outputs:
                producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                            enable_idempotence=True)
                await producer.start()
                outputs["producer"] = producer
        await outputs["producer"].send_and_wait(topic_name, value, key=key, headers=headers)

    output = send or produce

    async def emit(target, key: bytes, value: bytes, headers=None) -> None:
        await output(target.get_topic_name(), key, value, headers)

    async def publish(target, event, key: str) -> None:
        out = signer.sign(to_record(event, key=key, source=SOURCE))
        await emit(target, out.key, out.value, out.headers)

    async def with_retries(handle, record) -> None:
        delay = 0.2
        while True:
            try:
                return await handle(record)
            except Exception:
                RETRIES.inc()
                log.exception("handling failed; retrying the same record")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def manually_acked(handle):
        # faust acks an event whose handler raised, which would skip it for good: here a record is
        # acked only once everything it causes is in Kafka, and retried until then.
        async def agent(stream):
            manual = stream.noack()
            async for record in manual.events():
                await with_retries(handle, record)
                await manual.ack(record)
        agent.__name__ = handle.__name__
        return agent

    async def set_aside(message, headers, reason: str) -> None:
        letter = dead_letter(message.key, message.value, headers, reason=reason, topic=message.topic,
                             partition=message.partition, offset=message.offset, service="validator")
        await emit(dead_letters, letter.key, letter.value, letter.headers)

    async def read_signed(record, expected):
        message = record.message
        headers = _headers(message)
        try:
            keyring.verify(message.key, message.value, headers)
            event = from_record(message.key, message.value, headers)
        except (BadSignature, UnreadableRecord) as exc:
            UNTRUSTED.labels(type(exc).__name__).inc()
            await set_aside(message, headers, str(exc))
            user = (message.key or b"").decode(errors="replace") or "unknown"
            insight = untrusted_record(user, str(exc), f"{message.topic}/{message.partition}/{message.offset}")
            await publish(fraud, insight, user)
            log.warning("points.fraud.detected", extra={"user_id": user, "insight_type": insight.insight_type,
                                                        "severity": insight.severity, "score": insight.score})
            return None
        if not isinstance(event, expected):
            # Signed by us, so a misrouted record rather than an attack: kept for an operator, not raised as fraud.
            UNTRUSTED.labels("UnexpectedType").inc()
            await set_aside(message, headers, f"{type(event).__name__} does not belong on {message.topic}")
            return None
        return event

    async def route_by_device(record) -> None:
        event = await read_signed(record, EventSubmitted)
        if event is not None:
            key = f"device:{event.device_id}" if event.device_id else f"user:{event.user_id}"
            await emit(by_device, key.encode(), _annotated(event, Context()))

    async def count_device_accounts(record) -> None:
        event, context = _read_annotated(record.message.value)
        if event.device_id:
            book = AccountBook.from_dict(devices.get(event.device_id))
            context = Context(accounts_on_device=book.add(event.user_id))
            devices[event.device_id] = book.to_dict()
        key = f"ip:{event.client_ip_hash}" if event.client_ip_hash else f"user:{event.user_id}"
        await emit(by_ip, key.encode(), _annotated(event, context))

    async def count_ip_accounts(record) -> None:
        event, context = _read_annotated(record.message.value)
        if event.client_ip_hash:
            book = AccountBook.from_dict(addresses.get(event.client_ip_hash))
            context = Context(context.accounts_on_device, accounts_on_ip=book.add(event.user_id, keep=1000))
            addresses[event.client_ip_hash] = book.to_dict()
        await emit(by_user, event.user_id.encode(), _annotated(event, context))

    async def decide_events(record) -> None:
        event, context = _read_annotated(record.message.value)
        account = UserState.from_dict(users.get(event.user_id))
        if account.already_decided(event):
            DUPLICATES.inc()
            return  # its decision is already in the ledger; deciding again could contradict it
        outcome = decide(event, account, context, rules)
        decision = outcome.decision
        # Insights first: a crash between the two repeats them (harmless) rather than losing them.
        for insight in outcome.insights:
            await publish(fraud, insight, event.user_id)
            INSIGHTS.labels(insight.insight_type, insight.severity).inc()
            log.warning("points.fraud.detected", extra={"user_id": event.user_id, "insight_type": insight.insight_type,
                                                        "severity": insight.severity, "score": insight.score})
        await publish(ledger, decision, event.user_id)
        account.remember(event)
        if decision.validation_status == "pending_review":
            account.hold_for_review(decision.model_dump(mode="json"), decision.decided_at)
        users[event.user_id] = account.to_dict()
        DECISIONS.labels(decision.validation_status, decision.event_type).inc()
        TRUST.observe(decision.trust_score)
        LATENCY.observe((utcnow() - event.received_at).total_seconds())
        log.info("points.event.validated", extra={
            "event_id": str(decision.event_id), "validation_status": decision.validation_status,
            "points_awarded": decision.points_delta if decision.validation_status == "validated" else 0,
            "trust_score": decision.trust_score})

    async def apply_reviews(record) -> None:
        command = await read_signed(record, (ReviewEvent, HoldEvent))
        if command is None:
            return
        account = UserState.from_dict(users.get(command.user_id))
        now = utcnow()
        result = finish_review(command, account, now) if isinstance(command, ReviewEvent) else hold(command, account, now)
        kind = type(command).__name__
        REVIEWS.labels(kind, str(result is not None).lower()).inc()
        if result is None:
            log.info("review not applicable", extra={"kind": kind, "event_id": str(command.event_id)})
            return
        await publish(ledger, result, command.user_id)
        users[command.user_id] = account.to_dict()
        log.info("points.event.reviewed", extra={"event_id": str(result.event_id), "admin": command.admin,
                                                 "validation_status": result.validation_status})

    app.agent(submitted, name="route-by-device")(manually_acked(route_by_device))
    app.agent(by_device, name="count-device-accounts")(manually_acked(count_device_accounts))
    app.agent(by_ip, name="count-ip-accounts")(manually_acked(count_ip_accounts))
    app.agent(by_user, name="decide-events")(manually_acked(decide_events))
    app.agent(reviews, name="apply-reviews")(manually_acked(apply_reviews))

    @app.task
    async def serve_ops() -> None:
        app._ops_runner = await start_ops_server(  # kept so it is not collected
            settings.ops_host, settings.validator_port, ready=lambda: state["started"] and not app.rebalancing)
        state["started"] = True

    return app
