"""The validator's agents in memory: faust's test_context feeds each agent, the memory store keeps its
tables, and a recording output port stands in for the broker. The real broker's flow is covered by the
end-to-end tests; these pin each agent's behaviour and are fast enough to run on every change."""
from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest

from services.validator.app import _annotated, create_app
from services.validator.state import Context
from shared import topics
from shared.commands import HoldEvent, ReviewEvent
from shared.deadletter import REASON, SERVICE, SOURCE
from shared.envelope import Record, from_record, to_record
from shared.events import Event, EventDecided, EventSubmitted, FraudInsightRaised
from shared.settings import Settings
from shared.signing import Signer

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
GATEWAY = "/points/gateway"
BY_DEVICE, BY_IP, BY_USER = "points-validator-by-device", "points-validator-by-ip", "points-validator-by-user"


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class OutputPort:
    """Records what the agents send, in order; told to, it fails the next sends as a lost broker would."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.attempts = 0
        self.failures = 0

    async def __call__(self, topic_name: str, key: bytes, value: bytes, headers) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unavailable")
        self.sent.append(Sent(topic_name, key, value, list(headers or [])))

    def on(self, topic_name: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic_name]


@pytest.fixture
def dev_settings(monkeypatch) -> Settings:
    """The test environment with the dev signing key, whatever this shell exports; the broker address
    answers nobody, so anything that tried to reach Kafka would fail instead of finding someone's broker."""
    for name in list(os.environ):
        if name.startswith(("POINTS_", "KAFKA_")):
            monkeypatch.delenv(name)
    return Settings(env="test", kafka_bootstrap_servers="127.0.0.1:9")


@pytest.fixture
def port() -> OutputPort:
    return OutputPort()


@pytest.fixture
async def app(dev_settings, port):  # async, so the app and its lock belong to the tests' event loop
    return create_app(dev_settings, send=port)


def submitted(at: datetime = T0, **extra) -> EventSubmitted:
    fields = dict(event_id=uuid4(), user_id="u1", event_type="habit_completed", event_time=at, nonce=uuid4().hex,
                  payload={"habit_id": str(uuid4())}, points=10, received_at=at, body_hash="h")
    return EventSubmitted(**{**fields, **extra})


def signed(settings: Settings, event: Event, key: str) -> Record:
    return settings.signer().sign(to_record(event, key=key, source=GATEWAY))


async def handle(agent, key: bytes, value: bytes, headers=None) -> None:
    """Put one record and wait until the agent acks it, i.e. until everything it causes has been sent."""
    await acked(await agent.put(value, key=key, headers=headers or []))


async def acked(event, *, timeout: float = 5.0) -> None:
    # test_context reports a non-yielding agent's value as processed when it enters the stream, before
    # the handler has run: the manual ack is what says the handler is done.
    async with asyncio.timeout(timeout):
        while not event.message.acked:
            await asyncio.sleep(0.005)


async def decide_on(app, *events: EventSubmitted, context: Context = Context()) -> None:
    async with app.agents["decide-events"].test_context() as agent:
        for event in events:
            await handle(agent, event.user_id.encode(), _annotated(event, context))


def read(settings: Settings, sent: Sent) -> Event:
    """The record as a consumer downstream reads it: only if our key signed it."""
    settings.keyring().verify(sent.key, sent.value, sent.headers)
    return from_record(sent.key, sent.value, sent.headers)


def decisions(settings: Settings, port: OutputPort) -> list[EventDecided]:
    return [read(settings, s) for s in port.on(topics.LEDGER)]


def insights(settings: Settings, port: OutputPort) -> list[FraudInsightRaised]:
    return [read(settings, s) for s in port.on(topics.FRAUD)]


def annotated(sent: Sent) -> tuple[UUID, str, dict]:
    raw = json.loads(sent.value)
    return UUID(raw["event"]["event_id"]), raw["event"]["user_id"], raw["context"]


# -- route-by-device ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("device_id", "key"), [("d1", b"device:d1"), (None, b"user:u1")])
async def test_a_signed_submission_is_forwarded_to_the_owner_of_its_device(app, port, dev_settings, device_id, key):
    event = submitted(device_id=device_id)
    record = signed(dev_settings, event, "u1")
    async with app.agents["route-by-device"].test_context() as agent:
        await handle(agent, record.key, record.value, record.headers)
    [forwarded] = port.sent
    assert (forwarded.topic, forwarded.key) == (BY_DEVICE, key)
    assert annotated(forwarded) == (event.event_id, "u1", {"accounts_on_device": 0, "accounts_on_ip": 0})


async def test_a_forged_submission_is_dead_lettered_and_raised_as_fraud_not_forwarded(app, port, dev_settings):
    forged = Signer.from_seed(dev_settings.signing_key_id, bytes(32)).sign(
        to_record(submitted(), key="u1", source=GATEWAY))
    async with app.agents["route-by-device"].test_context() as agent:
        await handle(agent, forged.key, forged.value, forged.headers)
    assert port.on(BY_DEVICE) == []
    [letter] = port.on(topics.DEAD_LETTER)
    headers = dict(letter.headers)
    assert (letter.key, letter.value) == (forged.key, forged.value)  # kept byte for byte
    assert headers[SOURCE] == f"{topics.SUBMITTED}/0/0".encode() and headers[SERVICE] == b"validator"
    assert b"signature" in headers[REASON]
    [insight] = insights(dev_settings, port)
    assert (insight.user_id, insight.insight_type, insight.severity) == ("u1", "bad_signature", "critical")


async def test_a_signed_record_that_is_not_a_cloudevent_is_dead_lettered(app, port, dev_settings):
    garbage = dev_settings.signer().sign(Record(key=b"u1", value=b"not json", headers=[("ce_type", b"nonsense")]))
    async with app.agents["route-by-device"].test_context() as agent:
        await handle(agent, garbage.key, garbage.value, garbage.headers)
    assert port.on(BY_DEVICE) == []
    assert [s.value for s in port.on(topics.DEAD_LETTER)] == [b"not json"]
    assert [i.insight_type for i in insights(dev_settings, port)] == ["bad_signature"]


async def test_a_signed_record_of_another_kind_is_dead_lettered_without_a_fraud_insight(app, port, dev_settings):
    decided = EventDecided(event_id=uuid4(), user_id="u1", event_type="habit_completed", event_time=T0,
                           points_delta=10, proof_type="none", validation_status="validated", trust_score=90,
                           rule_set="v1", validated_by="system", decided_at=T0)
    misrouted = signed(dev_settings, decided, "u1")
    async with app.agents["route-by-device"].test_context() as agent:
        await handle(agent, misrouted.key, misrouted.value, misrouted.headers)
    assert port.on(BY_DEVICE) == [] and insights(dev_settings, port) == []
    [letter] = port.on(topics.DEAD_LETTER)
    assert dict(letter.headers)[REASON].decode() == f"EventDecided does not belong on {topics.SUBMITTED}"


# -- count-device-accounts and count-ip-accounts ------------------------------------------------------

async def test_the_third_account_on_a_device_is_counted_as_the_third(app, port):
    async with app.agents["count-device-accounts"].test_context() as agent:
        for user in ("u1", "u2", "u1", "u3"):
            event = submitted(user_id=user, device_id="d1")
            await handle(agent, b"device:d1", _annotated(event, Context()))
    assert [annotated(s)[2]["accounts_on_device"] for s in port.on(BY_IP)] == [1, 2, 2, 3]
    assert [s.key for s in port.on(BY_IP)] == [b"user:u1", b"user:u2", b"user:u1", b"user:u3"]


async def test_a_submission_without_a_device_passes_on_to_the_owner_of_its_address(app, port):
    async with app.agents["count-device-accounts"].test_context() as agent:
        await handle(agent, b"user:u1", _annotated(submitted(client_ip_hash="ip1"), Context()))
    [passed] = port.sent
    assert (passed.topic, passed.key, annotated(passed)[2]["accounts_on_device"]) == (BY_IP, b"ip:ip1", 0)


async def test_accounts_on_an_address_are_counted_and_the_device_count_is_kept(app, port):
    async with app.agents["count-ip-accounts"].test_context() as agent:
        for user in ("u1", "u2"):
            await handle(agent, b"ip:ip1", _annotated(submitted(user_id=user, client_ip_hash="ip1"),
                                                      Context(accounts_on_device=4)))
    assert [(s.topic, s.key, annotated(s)[2]) for s in port.sent] == [
        (BY_USER, b"u1", {"accounts_on_device": 4, "accounts_on_ip": 1}),
        (BY_USER, b"u2", {"accounts_on_device": 4, "accounts_on_ip": 2}),
    ]


# -- decide-events ------------------------------------------------------------------------------------

async def test_an_ordinary_event_is_validated_and_published_to_the_ledger_signed(app, port, dev_settings):
    event = submitted()
    await decide_on(app, event)
    [decision] = decisions(dev_settings, port)
    assert (decision.event_id, decision.validation_status, decision.points_delta) == (event.event_id, "validated", 10)
    assert decision.trust_score >= 60 and decision.validated_by == "validator"
    assert port.on(topics.LEDGER)[0].key == b"u1" and port.on(topics.FRAUD) == []


async def test_a_second_event_under_a_second_later_is_rejected_and_raised_as_fraud(app, port, dev_settings):
    first, second = submitted(T0), submitted(T0 + timedelta(milliseconds=400))
    await decide_on(app, first, second)
    statuses = [(d.event_id, d.validation_status) for d in decisions(dev_settings, port)]
    assert statuses == [(first.event_id, "validated"), (second.event_id, "rejected")]
    assert decisions(dev_settings, port)[1].trust_score < 30
    [insight] = insights(dev_settings, port)
    assert (insight.event_id, insight.insight_type) == (second.event_id, "rapid_fire_events")
    # The insight goes out before the decision it explains.
    assert [s.topic for s in port.sent] == [topics.LEDGER, topics.FRAUD, topics.LEDGER]


async def test_a_redelivered_submission_is_not_decided_twice(app, port, dev_settings):
    event = submitted()
    await decide_on(app, event, event)
    assert [d.event_id for d in decisions(dev_settings, port)] == [event.event_id]


async def test_the_user_state_outlives_one_test_context(app, port, dev_settings):
    event = submitted()
    await decide_on(app, event)
    await decide_on(app, event, submitted(T0 + timedelta(milliseconds=300)))
    assert [d.validation_status for d in decisions(dev_settings, port)] == ["validated", "rejected"]


# -- the three owners in turn --------------------------------------------------------------------------

async def test_the_third_account_on_one_device_is_held_for_review_through_the_whole_chain(app, port, dev_settings):
    stages = [("route-by-device", BY_DEVICE), ("count-device-accounts", BY_IP), ("count-ip-accounts", BY_USER),
              ("decide-events", topics.LEDGER)]
    records = [signed(dev_settings, submitted(T0 + timedelta(minutes=i), user_id=user, device_id="d1"), user)
               for i, user in enumerate(("u1", "u2", "u3"))]
    inputs = [Sent(topics.SUBMITTED, r.key, r.value, r.headers) for r in records]
    for name, output in stages:
        async with app.agents[name].test_context() as agent:
            for record in inputs:
                await handle(agent, record.key, record.value, record.headers)
        inputs = port.on(output)
    held = decisions(dev_settings, port)
    assert [(d.user_id, d.validation_status) for d in held] == [
        ("u1", "validated"), ("u2", "validated"), ("u3", "pending_review")]
    assert "device_shared_by_accounts" in held[2].reasons
    [insight] = insights(dev_settings, port)
    assert (insight.user_id, insight.insight_type, insight.evidence["accounts_on_device"]) == \
        ("u3", "device_shared_by_accounts", 3)


# -- apply-reviews ------------------------------------------------------------------------------------

def review(event: EventSubmitted, verdict: str, admin: str = "admin@points.dev") -> ReviewEvent:
    return ReviewEvent(command_id=uuid4(), user_id=event.user_id, issued_at=T0 + timedelta(hours=1),
                       event_id=event.event_id, admin=admin, decision=verdict, note="checked the proof")


async def apply(app, settings: Settings, *commands) -> None:
    async with app.agents["apply-reviews"].test_context() as agent:
        for command in commands:
            record = signed(settings, command, command.user_id)
            await handle(agent, record.key, record.value, record.headers)


async def test_an_approved_held_event_gets_a_final_validated_record_naming_the_admin(app, port, dev_settings):
    event = submitted(attestation="invalid", attestation_reasons=("bad_signature",))
    await decide_on(app, event)
    assert [d.validation_status for d in decisions(dev_settings, port)] == ["pending_review"]
    await apply(app, dev_settings, review(event, "approve"))
    final = decisions(dev_settings, port)[-1]
    assert (final.event_id, final.validation_status, final.validated_by) == \
        (event.event_id, "validated", "admin@points.dev")
    assert final.reasons[-1] == "review_approved" and final.review_note == "checked the proof"


async def test_a_verdict_on_an_event_not_awaiting_review_publishes_nothing(app, port, dev_settings):
    held, ordinary = submitted(attestation="invalid"), submitted(T0 + timedelta(minutes=5))
    await decide_on(app, held, ordinary)
    await apply(app, dev_settings, review(held, "reject"), review(held, "approve"), review(ordinary, "reject"))
    assert [(d.event_id, d.validation_status) for d in decisions(dev_settings, port)] == [
        (held.event_id, "pending_review"), (ordinary.event_id, "validated"), (held.event_id, "rejected")]


async def test_an_admin_hold_wins_over_the_later_automatic_decision(app, port, dev_settings):
    event = submitted()
    await apply(app, dev_settings, HoldEvent(
        command_id=uuid4(), user_id="u1", issued_at=T0, event_id=event.event_id, admin="admin@points.dev",
        event_type=event.event_type, event_time=event.event_time, points=event.points, proof_type="none"))
    await decide_on(app, event)
    [decision] = decisions(dev_settings, port)
    assert (decision.validation_status, decision.validated_by, decision.reasons) == \
        ("pending_review", "admin@points.dev", ("held_by_admin",))


async def test_a_forged_verdict_is_dead_lettered_and_changes_nothing(app, port, dev_settings):
    event = submitted(attestation="invalid")
    await decide_on(app, event)
    forged = Signer.from_seed(dev_settings.signing_key_id, bytes(32)).sign(
        to_record(review(event, "approve"), key="u1", source=GATEWAY))
    async with app.agents["apply-reviews"].test_context() as agent:
        await handle(agent, forged.key, forged.value, forged.headers)
    assert [d.validation_status for d in decisions(dev_settings, port)] == ["pending_review"]
    assert dict(port.on(topics.DEAD_LETTER)[0].headers)[SOURCE] == f"{topics.REVIEWS}/0/0".encode()


# -- failures of the output port ----------------------------------------------------------------------

async def test_a_failed_send_is_retried_and_the_record_stays_unacked_until_it_is_out(app, port, dev_settings):
    record = signed(dev_settings, submitted(device_id="d1"), "u1")
    port.failures = 1
    async with app.agents["route-by-device"].test_context() as agent:
        event = await agent.put(record.value, key=record.key, headers=record.headers)
        async with asyncio.timeout(5):
            while port.attempts < 1:
                await asyncio.sleep(0.005)
        assert not event.message.acked and port.sent == []
        await acked(event)
    assert port.attempts == 2 and [s.key for s in port.sent] == [b"device:d1"]


async def test_a_decision_whose_publish_failed_is_published_once_and_then_remembered(app, port, dev_settings):
    event = submitted()
    port.failures = 1
    await decide_on(app, event, event)
    assert port.attempts == 2 and [d.event_id for d in decisions(dev_settings, port)] == [event.event_id]
