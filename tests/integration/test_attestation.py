"""Device attestation through the gateway: key registration, assertions and Play Integrity verdicts."""
from __future__ import annotations

import base64
import json

import pytest

from shared.events import utcnow
from shared.settings import REPO_ROOT
from tests.conftest import APP_ATTEST_APP_ID
from tests.devices import AppAttestDevice
from tests.helpers import decided_event, habit_event, new_user, spaced

pytestmark = pytest.mark.integration

RECORDED = json.loads((REPO_ROOT / "tests/fixtures/app_attest/attestation-development.json").read_text())


async def test_a_challenge_is_issued_for_the_signed_in_user(gateway, token, db):
    user = new_user()
    response = await gateway.post("/v1/attestation/challenges", headers=token(user))
    assert response.status_code == 201
    challenge = base64.b64decode(response.json()["challenge"])
    assert len(challenge) == 32
    assert await db.fetchval("SELECT user_id FROM attestation_challenges WHERE challenge = $1", challenge) == user


async def test_a_recorded_apple_attestation_registers_its_key_once(gateway, token, db):
    user = new_user()
    challenge = base64.b64decode(RECORDED["challenge"])
    await db.execute("DELETE FROM device_keys WHERE key_id = $1", base64.b64decode(RECORDED["keyId"]))
    # The recorded attestation answers a challenge we did not issue; stand in for the issuing step.
    await db.execute("INSERT INTO attestation_challenges (challenge, user_id, expires_at) "
                     "VALUES ($1, $2, now() + interval '5 minutes') ON CONFLICT (challenge) DO UPDATE "
                     "SET user_id = EXCLUDED.user_id, expires_at = EXCLUDED.expires_at", challenge, user)
    body = {"key_id": RECORDED["keyId"], "attestation": RECORDED["attestation"], "challenge": RECORDED["challenge"]}

    registered = await gateway.post("/v1/attestation/apple/keys", json=body, headers=token(user))
    assert registered.status_code == 201, registered.text
    assert registered.json()["environment"] == "development"
    assert await db.fetchval("SELECT user_id FROM device_keys WHERE key_id = $1",
                             base64.b64decode(RECORDED["keyId"])) == user

    again = await gateway.post("/v1/attestation/apple/keys", json=body, headers=token(user))
    assert again.status_code == 422 and "challenge" in again.json()["detail"]


async def test_an_attestation_answering_another_challenge_is_refused(gateway, token):
    user = new_user()
    issued = (await gateway.post("/v1/attestation/challenges", headers=token(user))).json()["challenge"]
    body = {"key_id": RECORDED["keyId"], "attestation": RECORDED["attestation"], "challenge": issued}
    refused = await gateway.post("/v1/attestation/apple/keys", json=body, headers=token(user))
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/attestation-failed")


async def registered_device(db, user: str) -> AppAttestDevice:
    """A device key as if registered through an attestation (Apple signs no keys of ours)."""
    device = AppAttestDevice(APP_ATTEST_APP_ID)
    await db.execute("INSERT INTO device_keys (key_id, user_id, platform, environment, public_key) "
                     "VALUES ($1, $2, 'app_attest', 'development', $3)", device.key_id, user, device.public_key)
    return device


def app_attested(event: dict, device: AppAttestDevice, **kwargs) -> dict:
    blob = device.assertion(event["nonce"].encode(), **kwargs)
    return {**event, "attestation": {"type": "app_attest", "token": base64.b64encode(blob).decode(),
                                     "key_id": base64.b64encode(device.key_id).decode()}}


async def test_an_event_with_a_valid_assertion_earns_more_trust(gateway, token, db):
    user = new_user()
    device = await registered_device(db, user)
    earlier, later = spaced(2)
    plain = await gateway.post("/v1/events", json=habit_event(at=earlier), headers=token(user))
    attested = await gateway.post("/v1/events", json=app_attested(habit_event(at=later), device),
                                  headers=token(user))

    plain_view = await decided_event(gateway, token(user), plain.json()["event_id"])
    attested_view = await decided_event(gateway, token(user), attested.json()["event_id"])
    assert attested_view["validation_status"] == "validated"
    assert "attestation_valid" in attested_view["reasons"]
    assert attested_view["trust_score"] > plain_view["trust_score"]


async def test_a_replayed_assertion_counter_sends_the_event_to_review(gateway, token, db):
    user = new_user()
    device = await registered_device(db, user)
    earlier, later = spaced(2)
    first = await gateway.post("/v1/events", json=app_attested(habit_event(at=earlier), device, counter=5),
                               headers=token(user))
    replay = await gateway.post("/v1/events", json=app_attested(habit_event(at=later), device, counter=5),
                                headers=token(user))

    assert (await decided_event(gateway, token(user), first.json()["event_id"]))["validation_status"] == "validated"
    replayed = await decided_event(gateway, token(user), replay.json()["event_id"])
    assert replayed["validation_status"] == "pending_review"
    assert "attestation_invalid" in replayed["reasons"]


async def test_another_accounts_device_key_does_not_vouch_for_an_event(gateway, token, db):
    device = await registered_device(db, new_user())
    intruder = new_user()
    response = await gateway.post("/v1/events", json=app_attested(habit_event(), device), headers=token(intruder))
    decided = await decided_event(gateway, token(intruder), response.json()["event_id"])
    assert decided["validation_status"] == "pending_review"


async def test_a_play_integrity_verdict_is_a_trust_signal(gateway, token, play_integrity):
    user = new_user()
    earlier, later = spaced(2)
    good, weak = habit_event(at=earlier), habit_event(at=later)
    good["attestation"] = {"type": "play_integrity",
                           "token": play_integrity.token(play_integrity.verdict(good["nonce"], utcnow()))}
    weak["attestation"] = {"type": "play_integrity", "token": play_integrity.token(
        play_integrity.verdict(weak["nonce"], utcnow(), deviceIntegrity__deviceRecognitionVerdict=[]))}

    trusted = await gateway.post("/v1/events", json=good, headers=token(user))
    doubted = await gateway.post("/v1/events", json=weak, headers=token(user))

    trusted_view = await decided_event(gateway, token(user), trusted.json()["event_id"])
    doubted_view = await decided_event(gateway, token(user), doubted.json()["event_id"])
    assert trusted_view["validation_status"] == "validated" and "attestation_valid" in trusted_view["reasons"]
    assert doubted_view["validation_status"] == "pending_review"


async def test_a_garbage_attestation_is_a_signal_not_an_error(gateway, token):
    user = new_user()
    event = {**habit_event(), "attestation": {"type": "app_attest", "token": "!!!", "key_id": "???"}}
    response = await gateway.post("/v1/events", json=event, headers=token(user))
    assert response.status_code == 202
    decided = await decided_event(gateway, token(user), response.json()["event_id"])
    assert decided["validation_status"] == "pending_review"
