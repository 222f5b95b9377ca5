"""Play Integrity tokens made the way Google makes them (JWE A256KW/A256GCM around an ES256 JWS)."""
from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.ingest.attestation.apple import AttestationFailed
from services.ingest.attestation.play_integrity import verify

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
DECRYPTION_KEY = os.urandom(32)
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
VERIFICATION_KEY = SIGNING_KEY.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
PACKAGE = "dev.points.habits"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def verdict(**changes) -> dict:
    body = {
        "requestDetails": {"requestPackageName": PACKAGE, "nonce": "event-nonce-1",
                           "timestampMillis": str(int(NOW.timestamp() * 1000))},
        "appIntegrity": {"appRecognitionVerdict": "PLAY_RECOGNIZED", "packageName": PACKAGE},
        "deviceIntegrity": {"deviceRecognitionVerdict": ["MEETS_DEVICE_INTEGRITY"]},
        "accountDetails": {"appLicensingVerdict": "LICENSED"},
    }
    for path, value in changes.items():
        section, field = path.split("__")
        body[section][field] = value
    return body


def token(payload: dict, signing_key=SIGNING_KEY, decryption_key: bytes = DECRYPTION_KEY) -> str:
    signed = jwt.encode(payload, signing_key, algorithm="ES256").encode()
    header = b64(json.dumps({"alg": "A256KW", "enc": "A256GCM"}).encode())
    content_key, iv = os.urandom(32), os.urandom(12)
    sealed = AESGCM(content_key).encrypt(iv, signed, header.encode())
    return ".".join([header, b64(aes_key_wrap(decryption_key, content_key)), b64(iv), b64(sealed[:-16]),
                     b64(sealed[-16:])])


def check(tok: str, nonce: str = "event-nonce-1"):
    return verify(tok, decryption_key=DECRYPTION_KEY, verification_key=VERIFICATION_KEY, package_name=PACKAGE,
                  expected_nonce=nonce, now=NOW)


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
