"""App Attest against Apple's real attestations (tests/fixtures/app_attest, from node-app-attest)."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from services.ingest.attestation.apple import AttestationFailed, verify_assertion, verify_attestation
from tests.devices import AppAttestDevice

FIXTURES = Path(__file__).parent.parent / "fixtures" / "app_attest"
APP_ID = "V8H6LQ9448.io.uebelacker.AppAttestExample"
# Inside the validity of both recorded credential certificates (2024-02-06 .. 2024-12-21).
WHILE_VALID = datetime(2024, 6, 1, tzinfo=timezone.utc)


def vector(environment: str) -> dict:
    raw = json.loads((FIXTURES / f"attestation-{environment}.json").read_text())
    return {"attestation": base64.b64decode(raw["attestation"]), "challenge": base64.b64decode(raw["challenge"]),
            "key_id": base64.b64decode(raw["keyId"])}


def attest(recorded: str, **overrides):
    args = {**vector(recorded), "app_id": APP_ID, "environment": recorded, "moment": WHILE_VALID, **overrides}
    return verify_attestation(args.pop("attestation"), **args)


@pytest.mark.parametrize("environment", ["development", "production"])
def test_apples_recorded_attestations_verify(environment):
    key = attest(environment)
    assert key.environment == environment
    assert hashlib.sha256(key.public_key).digest() == key.key_id
    assert key.receipt


def test_a_wrong_challenge_is_refused():
    with pytest.raises(AttestationFailed, match="nonce"):
        attest("development", challenge=b"another challenge")


def test_another_apps_id_is_refused():
    with pytest.raises(AttestationFailed, match="another app"):
        attest("development", app_id="V8H6LQ9448.com.example.Other")


def test_a_key_id_that_is_not_the_attested_key_is_refused():
    with pytest.raises(AttestationFailed, match="key id"):
        attest("development", key_id=hashlib.sha256(b"other").digest())


def test_a_development_attestation_is_refused_in_production():
    with pytest.raises(AttestationFailed, match="environment"):
        attest("development", environment="production")


def test_certificates_are_checked_at_the_verification_time():
    with pytest.raises(AttestationFailed, match="not valid"):
        attest("production", moment=datetime(2026, 11, 26, tzinfo=timezone.utc))


def test_a_tampered_certificate_chain_is_refused():
    obj = cbor2.loads(vector("development")["attestation"])
    leaf = bytearray(obj["attStmt"]["x5c"][0])
    leaf[-10] ^= 0x01  # inside the signature of the credential certificate
    obj["attStmt"]["x5c"][0] = bytes(leaf)
    with pytest.raises(AttestationFailed):
        attest("development", attestation=cbor2.dumps(obj))


def test_a_chain_from_another_root_is_refused():
    other_root_key = ec.generate_private_key(ec.SECP384R1())
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Apple App Attestation Root CA")])
    fake_root = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                 .public_key(other_root_key.public_key()).serial_number(1)
                 .not_valid_before(datetime(2020, 1, 1)).not_valid_after(datetime(2040, 1, 1))
                 .sign(other_root_key, hashes.SHA384()))
    with pytest.raises(AttestationFailed, match="root"):
        attest("development", root=fake_root)


def test_garbage_is_a_failed_attestation_not_a_crash():
    with pytest.raises(AttestationFailed):
        attest("development", attestation=b"\x00not cbor")


# Assertions: Apple publishes no recorded ones, so these come from a key of our own, made exactly
# as a device makes them (ECDSA P-256 over SHA-256(authenticatorData || SHA-256(clientData))).
DEVICE = AppAttestDevice(APP_ID)


def assertion(client_data: bytes, counter: int, app_id: str = APP_ID, key=None) -> bytes:
    return DEVICE.assertion(client_data, counter=counter, app_id=app_id, key=key)


def check(blob: bytes, client_data: bytes = b"nonce-1", last_counter: int = 0) -> int:
    return verify_assertion(blob, client_data=client_data, public_key=DEVICE.public_key, app_id=APP_ID,
                            last_counter=last_counter)


def test_an_assertion_over_the_request_verifies_and_reports_its_counter():
    assert check(assertion(b"nonce-1", 7)) == 7


def test_a_replayed_counter_is_refused():
    with pytest.raises(AttestationFailed, match="replay"):
        check(assertion(b"nonce-1", 7), last_counter=7)


def test_an_assertion_for_another_request_is_refused():
    with pytest.raises(AttestationFailed, match="signature"):
        check(assertion(b"nonce-1", 8), client_data=b"nonce-2")


def test_an_assertion_by_another_key_is_refused():
    with pytest.raises(AttestationFailed, match="signature"):
        check(assertion(b"nonce-1", 8, key=ec.generate_private_key(ec.SECP256R1())))


def test_an_assertion_for_another_app_is_refused():
    with pytest.raises(AttestationFailed, match="another app"):
        check(assertion(b"nonce-1", 8, app_id="TEAM.other.app"))
