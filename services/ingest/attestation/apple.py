"""Apple App Attest: one attestation per device key, then an assertion per request. Pure: no I/O.

Follows Apple's "Validating apps that connect to your server": the attestation object is CBOR
({fmt, attStmt: {x5c, receipt}, authData}); the assertion is CBOR ({signature, authenticatorData}).
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

NONCE_OID = x509.ObjectIdentifier("1.2.840.113635.100.8.2")
# DER of SEQUENCE { [1] { OCTET STRING (32 bytes) } }, the wrapping of the nonce in the credential certificate.
NONCE_PREFIX = bytes.fromhex("3024a1220420")
AAGUID = {"development": b"appattestdevelop", "production": b"appattest" + b"\x00" * 7}
ROOT_CA = x509.load_pem_x509_certificate((Path(__file__).parent / "apple_app_attest_root_ca.pem").read_bytes())


class AttestationFailed(ValueError):
    """Why a device's claim was not believed; the reason becomes a trust signal."""


@dataclass(frozen=True)
class AttestedKey:
    key_id: bytes
    public_key: bytes  # X9.62 uncompressed point
    environment: str
    receipt: bytes


@dataclass(frozen=True)
class AuthenticatorData:
    rp_id_hash: bytes
    counter: int
    aaguid: bytes
    credential_id: bytes

    @classmethod
    def parse(cls, raw: bytes) -> "AuthenticatorData":
        if len(raw) < 37:
            raise AttestationFailed("authenticator data too short")
        counter = struct.unpack(">I", raw[33:37])[0]
        aaguid, credential_id = b"", b""
        if len(raw) >= 55:
            aaguid = raw[37:53]
            length = struct.unpack(">H", raw[53:55])[0]
            credential_id = raw[55:55 + length]
        return cls(raw[:32], counter, aaguid, credential_id)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _check_chain(chain: list[x509.Certificate], moment: datetime, root: x509.Certificate) -> None:
    for cert, issuer in zip(chain, [*chain[1:], root]):
        if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
            raise AttestationFailed(f"certificate {cert.subject.rfc4514_string()} not valid at {moment.isoformat()}")
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise AttestationFailed("certificate chain does not lead to Apple's App Attest root") from exc


def verify_attestation(attestation: bytes, *, challenge: bytes, key_id: bytes, app_id: str, environment: str,
                       moment: datetime, root: x509.Certificate = ROOT_CA) -> AttestedKey:
    try:
        obj = cbor2.loads(attestation)
        statement, auth_raw = obj["attStmt"], obj["authData"]
        if obj.get("fmt") != "apple-appattest":
            raise AttestationFailed("not an App Attest attestation")
        chain = [x509.load_der_x509_certificate(der) for der in statement["x5c"]]
    except AttestationFailed:
        raise
    except Exception as exc:  # malformed CBOR or certificates: one outcome, a failed attestation
        raise AttestationFailed(f"unreadable attestation: {type(exc).__name__}") from exc
    if len(chain) < 2:
        raise AttestationFailed("certificate chain incomplete")
    _check_chain(chain, moment, root)
    credential = chain[0]
    nonce = _sha256(auth_raw + _sha256(challenge))
    try:
        embedded = credential.extensions.get_extension_for_oid(NONCE_OID).value.value
    except x509.ExtensionNotFound as exc:
        raise AttestationFailed("credential certificate carries no nonce") from exc
    if embedded != NONCE_PREFIX + nonce:
        raise AttestationFailed("nonce does not match the challenge")
    public_key = credential.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    if _sha256(public_key) != key_id:
        raise AttestationFailed("key id does not match the attested key")
    auth = AuthenticatorData.parse(auth_raw)
    if auth.rp_id_hash != _sha256(app_id.encode()):
        raise AttestationFailed("attestation is for another app")
    if auth.counter != 0:
        raise AttestationFailed("attestation counter is not zero")
    if auth.aaguid != AAGUID[environment]:
        raise AttestationFailed(f"attestation is not from the {environment} environment")
    if auth.credential_id != key_id:
        raise AttestationFailed("credential id does not match the key id")
    return AttestedKey(key_id=key_id, public_key=public_key, environment=environment,
                       receipt=statement.get("receipt", b""))


def verify_assertion(assertion: bytes, *, client_data: bytes, public_key: bytes, app_id: str,
                     last_counter: int) -> int:
    """Check one request's assertion; returns its counter, which must exceed every earlier one."""
    try:
        obj = cbor2.loads(assertion)
        signature, auth_raw = obj["signature"], obj["authenticatorData"]
    except Exception as exc:
        raise AttestationFailed(f"unreadable assertion: {type(exc).__name__}") from exc
    nonce = _sha256(auth_raw + _sha256(client_data))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    try:
        key.verify(signature, nonce, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise AttestationFailed("assertion signature does not verify") from exc
    auth = AuthenticatorData.parse(auth_raw)
    if auth.rp_id_hash != _sha256(app_id.encode()):
        raise AttestationFailed("assertion is for another app")
    if auth.counter <= last_counter:
        raise AttestationFailed("assertion counter did not increase (replay)")
    return auth.counter
