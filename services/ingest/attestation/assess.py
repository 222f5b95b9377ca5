"""What the gateway concludes from the attestation an app sent with an event."""
from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from prometheus_client import Counter

from services.ingest.attestation import apple, play_integrity, store
from services.ingest.attestation.apple import AttestationFailed
from shared.events import AttestationVerdict
from shared.settings import Settings

log = logging.getLogger("points.ingest")
VERDICTS = Counter("ingest_attestation_verdicts_total", "Attestation verdicts", ["type", "verdict"])


@dataclass(frozen=True)
class Verdict:
    verdict: AttestationVerdict
    reasons: tuple[str, ...] = ()


def b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not: apps send all of them."""
    text = text.strip()
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttestationFailed("not base64") from exc


async def assess(attestation, *, user_id: str, nonce: str, pool: asyncpg.Pool, settings: Settings,
                 now: datetime) -> Verdict:
    if attestation is None:
        verdict = Verdict("absent", ("attestation_missing",) if settings.attestation_required else ())
        VERDICTS.labels("none", verdict.verdict).inc()
        return verdict
    try:
        if attestation.type == "app_attest":
            verdict = await _app_attest(attestation, user_id=user_id, nonce=nonce, pool=pool, settings=settings)
        else:
            verdict = _play_integrity(attestation.token, nonce=nonce, settings=settings, now=now)
    except AttestationFailed as failed:
        verdict = Verdict("invalid", (str(failed),))
    VERDICTS.labels(attestation.type, verdict.verdict).inc()
    return verdict


async def _app_attest(attestation, *, user_id: str, nonce: str, pool: asyncpg.Pool, settings: Settings) -> Verdict:
    if not settings.app_attest_app_id:
        return Verdict("unverifiable", ("app_attest_not_configured",))
    if not attestation.key_id:
        raise AttestationFailed("assertion without key_id")
    key_id = b64decode(attestation.key_id)
    key = await store.device_key(pool, key_id)
    if key is None:
        raise AttestationFailed("unknown device key")
    if key["user_id"] != user_id:
        raise AttestationFailed("device key registered to another account")
    # The assertion signs the event's nonce, so it cannot be lifted onto another event.
    counter = apple.verify_assertion(b64decode(attestation.token), client_data=nonce.encode(),
                                     public_key=key["public_key"], app_id=settings.app_attest_app_id,
                                     last_counter=key["counter"])
    if not await store.advance_counter(pool, key_id, counter):
        raise AttestationFailed("assertion counter did not increase (replay)")
    return Verdict("valid")


def _play_integrity(token: str, *, nonce: str, settings: Settings, now: datetime) -> Verdict:
    if not (settings.play_integrity_package and settings.play_integrity_decryption_key
            and settings.play_integrity_verification_key):
        return Verdict("unverifiable", ("play_integrity_not_configured",))
    result = play_integrity.verify(
        token, decryption_key=b64decode(settings.play_integrity_decryption_key.get_secret_value()),
        verification_key=b64decode(settings.play_integrity_verification_key),
        package_name=settings.play_integrity_package, expected_nonce=nonce, now=now)
    return Verdict("valid") if result.trustworthy else Verdict("invalid", result.signals)
