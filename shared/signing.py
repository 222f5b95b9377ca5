"""Ed25519 signatures on Kafka records, so a consumer can tell our records from anyone else's.

The signature covers the record key, every CloudEvents header and the value, in a canonical
order; it travels in the `points-signature` header with the key id in `points-key-id`. Public
keys are published as a JWK set (the gateway serves it at /.well-known/points-signing-keys).

Beside it, `points-mac` is an HMAC-SHA256 of the same bytes under a key derived from the signing
key's seed. Our services hold that seed anyway (they sign), so for them the MAC proves exactly what
the signature does, at a tenth of the cost of checking an Ed25519 signature, and every event is
checked four times on its way through. Anyone else checks the signature with the published keys.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from shared.envelope import Record, UnreadableRecord, from_record
from shared.events import Event

if TYPE_CHECKING:
    from shared.settings import Settings

SIGNATURE_HEADER = "points-signature"
KEY_ID_HEADER = "points-key-id"
MAC_HEADER = "points-mac"
# Known to everyone, so only good for a laptop: settings refuse it outside dev.
DEV_SIGNING_SEED = hashlib.sha256(b"points-ledger dev signing key").digest()
_LENGTH = struct.Struct(">I").pack


class BadSignature(ValueError):
    pass


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mac_key(seed: bytes) -> bytes:
    """The services' MAC key for a signing seed: as secret as the seed, and no way back to it."""
    return hmac.new(seed, b"points-ledger record MAC v1", hashlib.sha256).digest()


def _mac(key: bytes, signed: bytes) -> bytes:
    return hmac.new(key, signed, hashlib.sha256).digest()


def signed_bytes(key: bytes | None, value: bytes, headers) -> bytes:
    parts = [key or b""]
    parts += [name.encode() + b"=" + raw for name, raw in sorted(
        header for header in headers if header[0][:3] == "ce_" or header[0] == "content-type")]
    parts.append(value)
    # Length-prefixing makes the encoding unambiguous whatever bytes the parts contain.
    return b"".join([_LENGTH(len(part)) + part for part in parts])


# libsodium (PyNaCl) rather than OpenSSL (cryptography) for the records: the same Ed25519, at half
# the cost a signature and a check (22 and 54 us against 44 and 104 here), paid for every record
# by every service.
@dataclass(frozen=True)
class Signer:
    key_id: str
    private_key: SigningKey = field(repr=False)
    mac_key: bytes = field(repr=False)

    @classmethod
    def from_seed(cls, key_id: str, seed: bytes) -> "Signer":
        return cls(key_id, SigningKey(seed), mac_key(seed))

    def public_bytes(self) -> bytes:
        return bytes(self.private_key.verify_key)

    def sign(self, record: Record) -> Record:
        signed = signed_bytes(record.key, record.value, record.headers)
        signature = self.private_key.sign(signed).signature
        return replace(record, headers=[*record.headers, (SIGNATURE_HEADER, _b64(signature).encode()),
                                        (KEY_ID_HEADER, self.key_id.encode()),
                                        (MAC_HEADER, _b64(_mac(self.mac_key, signed)).encode())])


@dataclass(frozen=True)
class Keyring:
    """The public keys a consumer trusts, by key id: the current one and any still being rotated out;
    for our services, also the MAC keys of the seeds they hold (never published)."""

    keys: dict[str, bytes]
    macs: dict[str, bytes] = field(default_factory=dict, repr=False)
    _verifiers: dict[str, VerifyKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_verifiers", {kid: VerifyKey(raw) for kid, raw in self.keys.items()})

    def verify(self, key: bytes | None, value: bytes, headers) -> str:
        found = {name: bytes(raw) for name, raw in headers}
        if SIGNATURE_HEADER not in found or KEY_ID_HEADER not in found:
            raise BadSignature("record is not signed")
        key_id = found[KEY_ID_HEADER].decode(errors="replace")
        secret = self.macs.get(key_id)
        if secret is not None and MAC_HEADER in found:
            try:
                given = _unb64(found[MAC_HEADER].decode())
            except (ValueError, TypeError) as exc:
                raise BadSignature("signature does not match the record") from exc
            if not hmac.compare_digest(_mac(secret, signed_bytes(key, value, headers)), given):
                raise BadSignature("signature does not match the record")
            return key_id
        public = self._verifiers.get(key_id)
        if public is None:
            raise BadSignature(f"unknown signing key {key_id!r}")
        try:
            public.verify(signed_bytes(key, value, headers), _unb64(found[SIGNATURE_HEADER].decode()))
        except (BadSignatureError, ValueError, TypeError) as exc:
            raise BadSignature("signature does not match the record") from exc
        return key_id

    def jwks(self) -> dict:
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                          "x": _b64(public)} for kid, public in sorted(self.keys.items())]}

    @classmethod
    def from_jwks(cls, document: dict | str) -> "Keyring":
        if isinstance(document, str):
            document = json.loads(document)
        return cls({k["kid"]: _unb64(k["x"]) for k in document["keys"] if k.get("crv") == "Ed25519"})


# Why a record is not trusted: not signed by our keys, or not one of our events.
UNTRUSTED = (BadSignature, UnreadableRecord)


def open_trusted(keyring: Keyring, key: bytes | None, value: bytes | None, headers) -> Event:
    """The event a record carries, once our keys' signature on it checks and it reads as one of our
    events; raises one of UNTRUSTED otherwise (for the caller to set the record aside)."""
    keyring.verify(key, value, headers)
    return from_record(key, value, headers)


def signer_from(settings: "Settings") -> Signer:
    """This process's signing key, from its settings (the published dev key when none is set, which
    production refuses)."""
    seed = base64.b64decode(settings.signing_key.get_secret_value()) if settings.signing_key else DEV_SIGNING_SEED
    return Signer.from_seed(settings.signing_key_id, seed)


def keyring_from(settings: "Settings") -> Keyring:
    """The keys this process trusts: its own (public key and MAC key) and the public keys of those
    rotated out (POINTS_SIGNING_PREVIOUS_KEYS), whose records are checked by their signature."""
    previous = Keyring.from_jwks(settings.signing_previous_keys).keys if settings.signing_previous_keys else {}
    own = signer_from(settings)
    return Keyring({**previous, own.key_id: own.public_bytes()}, macs={own.key_id: own.mac_key})
