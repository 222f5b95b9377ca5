"""The faust app: consumes submissions keyed by user, decides, and appends the decision to the ledger."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
import faust
from prometheus_client import Counter, Histogram

from services.validator.rules import Thresholds, decide, insights_for, untrusted_record
from services.validator.state import UserState
from shared import topics
from shared.deadletter import dead_letter
from shared.envelope import UnreadableRecord, from_record, to_record
from shared.events import EventSubmitted, utcnow
from shared.ops_http import start_ops_server
from shared.settings import Settings, get_settings
from shared.signing import BadSignature

log = logging.getLogger("points.validator")
SOURCE = "/points/validator"

DECISIONS = Counter("validator_decisions_total", "Decisions made", ["validation_status", "event_type"])
TRUST = Histogram("validator_trust_score", "Trust scores given", buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100))
LATENCY = Histogram("validator_decision_latency_seconds", "From receipt at the gateway to decision published")
UNTRUSTED = Counter("validator_untrusted_records_total", "Submitted records dead-lettered", ["reason"])
DUPLICATES = Counter("validator_duplicates_skipped_total", "Redelivered submissions already decided")
RETRIES = Counter("validator_retries_total", "Attempts to decide a record again after a failure")


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or get_settings()
    thresholds = Thresholds(settings.validated_min_score, settings.review_min_score,
                            settings.min_event_spacing_seconds)
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
    )
    submitted = app.topic(topics.SUBMITTED, key_serializer="raw", value_serializer="raw")
    ledger = app.topic(topics.LEDGER, key_serializer="raw", value_serializer="raw")
    fraud = app.topic(topics.FRAUD, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(topics.DEAD_LETTER, key_serializer="raw", value_serializer="raw")
    signer, keyring = settings.signer(), settings.keyring()
    # Changelog-backed, so a restarted validator resumes with what it knew of each user.
    users = app.Table("user-state", partitions=settings.topic_partitions)
    state = {"started": False}

    async def publish(topic, event, key: str) -> None:
        out = signer.sign(to_record(event, key=key, source=SOURCE))
        # Waiting for the broker's ack before acking the input keeps at-least-once honest.
        await (await topic.send(key=out.key, value=out.value, headers=out.headers))

    async def handle(record) -> None:
        message = record.message
        key = message.key or b""
        headers = list(message.headers.items() if isinstance(message.headers, Mapping) else message.headers or [])
        try:
            keyring.verify(message.key, message.value, headers)
            event = from_record(message.key, message.value, headers)
        except (BadSignature, UnreadableRecord) as exc:
            UNTRUSTED.labels(type(exc).__name__).inc()
            letter = dead_letter(message.key, message.value, headers, reason=str(exc),
                                 topic=message.topic, partition=message.partition, offset=message.offset,
                                 service="validator")
            await (await dead_letters.send(key=letter.key, value=letter.value, headers=letter.headers))
            user = key.decode(errors="replace") or "unknown"
            insight = untrusted_record(user, str(exc), f"{message.topic}/{message.partition}/{message.offset}")
            await publish(fraud, insight, user)
            log.warning("points.fraud.detected", extra={
                "user_id": user, "insight_type": insight.insight_type, "severity": insight.severity,
                "score": insight.score})
            return
        if not isinstance(event, EventSubmitted):
            return
        state = UserState.from_dict(users.get(event.user_id))
        if state.already_decided(event):
            DUPLICATES.inc()
            return  # its decision is already in the ledger; deciding again could contradict it
        decision = decide(event, state.last_event_time, thresholds)
        # Insights first: if we crash between the two, the redelivery raises them again (harmless),
        # whereas a decision published first would make the redelivery skip them.
        for insight in insights_for(event, decision):
            await publish(fraud, insight, event.user_id)
            log.warning("points.fraud.detected", extra={
                "user_id": event.user_id, "insight_type": insight.insight_type, "severity": insight.severity,
                "score": insight.score})
        await publish(ledger, decision, event.user_id)
        state.remember(event)
        users[event.user_id] = state.to_dict()
        DECISIONS.labels(decision.validation_status, decision.event_type).inc()
        TRUST.observe(decision.trust_score)
        LATENCY.observe((utcnow() - event.received_at).total_seconds())
        log.info("points.event.validated", extra={
            "event_id": str(decision.event_id), "validation_status": decision.validation_status,
            "points_awarded": decision.points_delta if decision.validation_status == "validated" else 0,
            "trust_score": decision.trust_score})

    @app.agent(submitted)
    async def decide_events(stream):
        # Manual acks: faust acks an event whose handler raised, which would skip it for good.
        # Here a record is acked only once its decision is in the ledger; until then it is retried.
        manual = stream.noack()
        async for record in manual.events():
            delay = 0.2
            while True:
                try:
                    await handle(record)
                    break
                except Exception:
                    RETRIES.inc()
                    log.exception("decision failed; retrying the same record")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            await manual.ack(record)

    @app.task
    async def serve_ops() -> None:
        app._ops_runner = await start_ops_server(  # kept so it is not collected
            "127.0.0.1", settings.validator_port, ready=lambda: state["started"] and not app.rebalancing)
        state["started"] = True

    return app
