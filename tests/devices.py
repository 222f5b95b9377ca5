"""Stand-ins for the device side of attestation, making what a phone and Google's servers make."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from datetime import datetime

import cbor2
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class AppAttestDevice:
    """A device's App Attest key: signs assertions over a request with a rising counter."""

    app_id: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    counter: int = 0

    @property
    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(self.public_key).digest()

    def assertion(self, client_data: bytes, *, counter: int | None = None, app_id: str | None = None,
                  key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
        if counter is None:
            self.counter += 1
            counter = self.counter
        auth = hashlib.sha256((app_id or self.app_id).encode()).digest() + b"\x00" + struct.pack(">I", counter)
        nonce = hashlib.sha256(auth + hashlib.sha256(client_data).digest()).digest()
        signature = (key or self.key).sign(nonce, ec.ECDSA(hashes.SHA256()))
        return cbor2.dumps({"signature": signature, "authenticatorData": auth})


@dataclass
class PlayIntegrityIssuer:
    """Google's side of Play Integrity for one app: the app's decryption and verification keys."""

    package: str
    decryption_key: bytes = field(default_factory=lambda: os.urandom(32))
    signing_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def verification_key(self) -> bytes:
        return self.signing_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    def verdict(self, nonce: str, at: datetime, **changes) -> dict:
        body = {
            "requestDetails": {"requestPackageName": self.package, "nonce": nonce,
                               "timestampMillis": str(int(at.timestamp() * 1000))},
            "appIntegrity": {"appRecognitionVerdict": "PLAY_RECOGNIZED", "packageName": self.package},
            "deviceIntegrity": {"deviceRecognitionVerdict": ["MEETS_DEVICE_INTEGRITY"]},
            "accountDetails": {"appLicensingVerdict": "LICENSED"},
        }
        for path, value in changes.items():
            section, name = path.split("__")
            body[section][name] = value
        return body

    def token(self, payload: dict, *, signing_key=None, decryption_key: bytes | None = None) -> str:
        signed = jwt.encode(payload, signing_key or self.signing_key, algorithm="ES256").encode()
        header = b64url(json.dumps({"alg": "A256KW", "enc": "A256GCM"}).encode())
        content_key, iv = os.urandom(32), os.urandom(12)
        sealed = AESGCM(content_key).encrypt(iv, signed, header.encode())
        wrapped = aes_key_wrap(decryption_key or self.decryption_key, content_key)
        return ".".join([header, b64url(wrapped), b64url(iv), b64url(sealed[:-16]), b64url(sealed[-16:])])
