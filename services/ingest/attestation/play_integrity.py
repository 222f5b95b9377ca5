"""Google Play Integrity verdicts, decrypted and verified locally with the app's own keys. Pure.

The token is a JWE (A256KW + A256GCM) wrapping a JWS (ES256) whose payload is the verdict, as
Google describes for "decrypt and verify locally". The keys come from the Play Console.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.serialization import load_der_public_key

from services.ingest.attestation.apple import AttestationFailed

MAX_AGE = timedelta(minutes=10)


@dataclass(frozen=True)
class PlayVerdict:
    signals: tuple[str, ...]

    @property
    def trustworthy(self) -> bool:
        return not self.signals


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decrypt(token: str, decryption_key: bytes) -> str:
    try:
        header_b64, wrapped_key, iv, ciphertext, tag = token.split(".")
        header = json.loads(_unb64(header_b64))
    except (ValueError, json.JSONDecodeError) as exc:
        raise AttestationFailed("integrity token is not a JWE") from exc
    if header.get("alg") != "A256KW" or header.get("enc") != "A256GCM":
        raise AttestationFailed("integrity token uses unexpected algorithms")
    try:
        content_key = aes_key_unwrap(decryption_key, _unb64(wrapped_key))
        plain = AESGCM(content_key).decrypt(_unb64(iv), _unb64(ciphertext) + _unb64(tag), header_b64.encode())
    except (InvalidUnwrap, InvalidTag, ValueError) as exc:
        raise AttestationFailed("integrity token does not decrypt with our key") from exc
    return plain.decode()


def verify(token: str, *, decryption_key: bytes, verification_key: bytes, package_name: str,
           expected_nonce: str, now: datetime) -> PlayVerdict:
    signed = decrypt(token, decryption_key)
    try:
        payload = jwt.decode(signed, load_der_public_key(verification_key), algorithms=["ES256"],
                             options={"verify_aud": False})
    except jwt.PyJWTError as exc:
        raise AttestationFailed("integrity verdict signature does not verify") from exc
    request = payload.get("requestDetails", {})
    if request.get("requestPackageName") != package_name:
        raise AttestationFailed("integrity verdict is for another app")
    if request.get("nonce") != expected_nonce:
        raise AttestationFailed("integrity verdict is for another request")
    issued = datetime.fromtimestamp(int(request.get("timestampMillis", 0)) / 1000, tz=now.tzinfo)
    if not now - MAX_AGE <= issued <= now + timedelta(minutes=1):
        raise AttestationFailed("integrity verdict is stale")

    signals = []
    if payload.get("appIntegrity", {}).get("appRecognitionVerdict") != "PLAY_RECOGNIZED":
        signals.append("app_not_recognized")
    device = payload.get("deviceIntegrity", {}).get("deviceRecognitionVerdict", [])
    if "MEETS_DEVICE_INTEGRITY" not in device:
        signals.append("device_integrity_not_met")
    if payload.get("accountDetails", {}).get("appLicensingVerdict") == "UNLICENSED":
        signals.append("app_unlicensed")
    return PlayVerdict(tuple(signals))
