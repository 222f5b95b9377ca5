"""Play Integrity tokens made the way Google makes them (JWE A256KW/A256GCM around an ES256 JWS)."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from services.ingest.attestation.apple import AttestationFailed
from services.ingest.attestation.play_integrity import verify
from tests.devices import PlayIntegrityIssuer

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
GOOGLE = PlayIntegrityIssuer("dev.points.habits")


def verdict(**changes) -> dict:
    return GOOGLE.verdict("event-nonce-1", NOW, **changes)


def token(payload: dict, **keys) -> str:
    return GOOGLE.token(payload, **keys)


def check(tok: str, nonce: str = "event-nonce-1"):
    return verify(tok, decryption_key=GOOGLE.decryption_key, verification_key=GOOGLE.verification_key,
                  package_name=GOOGLE.package, expected_nonce=nonce, now=NOW)


def test_a_genuine_device_in_a_recognised_app_is_trustworthy():
    assert check(token(verdict())).trustworthy


@pytest.mark.parametrize("changes,signal", [
    ({"appIntegrity__appRecognitionVerdict": "UNRECOGNIZED_VERSION"}, "app_not_recognized"),
    ({"deviceIntegrity__deviceRecognitionVerdict": []}, "device_integrity_not_met"),
    ({"accountDetails__appLicensingVerdict": "UNLICENSED"}, "app_unlicensed"),
])
def test_weak_verdicts_become_signals(changes, signal):
    result = check(token(verdict(**changes)))
    assert signal in result.signals and not result.trustworthy


def test_a_token_for_another_request_is_refused():
    with pytest.raises(AttestationFailed, match="another request"):
        check(token(verdict()), nonce="event-nonce-2")


def test_a_token_for_another_app_is_refused():
    with pytest.raises(AttestationFailed, match="another app"):
        check(token(verdict(requestDetails__requestPackageName="com.evil")))


def test_a_stale_token_is_refused():
    old = str(int((NOW - timedelta(hours=1)).timestamp() * 1000))
    with pytest.raises(AttestationFailed, match="stale"):
        check(token(verdict(requestDetails__timestampMillis=old)))


def test_a_token_signed_by_someone_else_is_refused():
    with pytest.raises(AttestationFailed, match="signature"):
        check(token(verdict(), signing_key=ec.generate_private_key(ec.SECP256R1())))


def test_a_token_encrypted_for_another_app_is_refused():
    with pytest.raises(AttestationFailed, match="decrypt"):
        check(token(verdict(), decryption_key=os.urandom(32)))


def test_garbage_is_a_failed_verdict_not_a_crash():
    with pytest.raises(AttestationFailed):
        check("not.a.token")
