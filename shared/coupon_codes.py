"""Coupon codes: derived from the coupon id, never stored; only a keyed hash of them is.

A code is 80 bits from HMAC-SHA256(code key, coupon id), written in Crockford's base32 (no I, L,
O or U, so nothing reads as another character), grouped in fours for reading aloud. Because it
is derived, a retried request gets the same code back without the code being kept anywhere;
the code key lives only in the services. PostgreSQL and Kafka hold HMAC-SHA256(COUPON_SECRET,
code) with the id of the secret, so the secret can be rotated while old codes still verify.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from shared.settings import Settings

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_BITS = 80
_READ_AS = {"O": "0", "I": "1", "L": "1", "U": "V"}


def derive(coupon_id: UUID, code_key: bytes) -> str:
    digest = hmac.new(code_key, coupon_id.bytes, hashlib.sha256).digest()
    number = int.from_bytes(digest[: CODE_BITS // 8], "big")
    chars = "".join(ALPHABET[(number >> shift) & 31] for shift in range(CODE_BITS - 5, -1, -5))
    return "-".join(chars[i:i + 4] for i in range(0, len(chars), 4))


def normalise(code: str) -> str | None:
    """What a merchant typed, as the canonical code; None if it cannot be one of ours."""
    chars = "".join(_READ_AS.get(c, c) for c in code.upper() if c not in "- \t")
    if len(chars) != CODE_BITS // 5 or any(c not in ALPHABET for c in chars):
        return None
    return "-".join(chars[i:i + 4] for i in range(0, len(chars), 4))


def code_hash(code: str, secret: bytes) -> str:
    return hmac.new(secret, code.encode(), hashlib.sha256).hexdigest()


class CouponKeys:
    """The code key and the hashing secrets, current and previous, as the services hold them."""

    def __init__(self, code_key: bytes, current: tuple[str, bytes], previous: dict[str, bytes] | None = None):
        self.code_key = code_key
        self.current_id, self._current = current
        self._all = {**(previous or {}), self.current_id: self._current}

    def code_for(self, coupon_id: UUID) -> str:
        return derive(coupon_id, self.code_key)

    def hash_for(self, code: str) -> str:
        return code_hash(code, self._current)

    def candidate_hashes(self, code: str) -> list[str]:
        """The code's hash under every secret still accepted, for looking a presented code up."""
        return [code_hash(code, secret) for secret in self._all.values()]


def coupon_keys_from(settings: "Settings") -> CouponKeys:
    """The code key and the hashing secrets, current and rotated out, from this process's settings."""
    previous = json.loads(settings.coupon_previous_secrets.get_secret_value()) if settings.coupon_previous_secrets else {}
    return CouponKeys(settings.coupon_code_key.get_secret_value().encode(),
                      (settings.coupon_secret_id, settings.coupon_secret.get_secret_value().encode()),
                      {kid: secret.encode() for kid, secret in previous.items()})
