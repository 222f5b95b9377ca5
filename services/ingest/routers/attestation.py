"""Device attestation: challenges, and registering an App Attest key."""
from __future__ import annotations

import base64

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.ingest.attestation import apple, store
from services.ingest.attestation.apple import AttestationFailed
from services.ingest.attestation.assess import b64decode
from services.ingest.deps import AppUser, Pool, SettingsDep
from services.ingest.problems import COMMON_PROBLEMS, Problem, problem_responses
from services.ingest.schemas import Text
from shared.events import utcnow

router = APIRouter(prefix="/v1/attestation", tags=["attestation"], responses=COMMON_PROBLEMS)


class Challenge(BaseModel):
    challenge: str = Field(description="Base64; the app passes SHA-256 of its bytes to attestKey")
    expires_at: AwareDatetime


class RegisterAppAttestKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_id: Text = Field(min_length=4, max_length=128, description="Base64 key identifier from generateKey")
    attestation: Text = Field(min_length=4, max_length=32768, description="Base64 attestation object")
    challenge: Text = Field(min_length=4, max_length=256, description="The challenge this server issued")


class RegisteredKey(BaseModel):
    key_id: str
    environment: str


@router.post("/challenges", status_code=201, response_model=Challenge, responses=problem_responses(429))
async def new_challenge(user: AppUser, pool: Pool) -> JSONResponse:
    """A single-use challenge for attesting a device key (valid five minutes)."""
    issued = await store.issue_challenge(pool, user.sub, utcnow())
    if issued is None:
        raise Problem(429, "too-many-challenges", f"At most {store.LIVE_CHALLENGES_PER_USER} live challenges per "
                      "user; use one, or wait until they expire.",
                      headers={"Retry-After": str(int(store.CHALLENGE_TTL.total_seconds()))})
    challenge, expires_at = issued
    body = Challenge(challenge=base64.b64encode(challenge).decode(), expires_at=expires_at)
    return JSONResponse(body.model_dump(mode="json"), status_code=201)


@router.post("/apple/keys", status_code=201, response_model=RegisteredKey,
             responses=problem_responses(409, 503))
async def register_app_attest_key(body: RegisterAppAttestKey, user: AppUser, pool: Pool,
                                  settings: SettingsDep) -> JSONResponse:
    """Register a device key with its App Attest attestation; later events carry assertions by it."""
    if not settings.app_attest_app_id:
        raise Problem(503, "attestation-not-configured", "App Attest is not configured on this server.")
    try:
        key_id, challenge = b64decode(body.key_id), b64decode(body.challenge)
        if not await store.consume_challenge(pool, user.sub, challenge, utcnow()):
            raise AttestationFailed("challenge unknown, expired or already used")
        key = apple.verify_attestation(
            b64decode(body.attestation), challenge=challenge, key_id=key_id, app_id=settings.app_attest_app_id,
            environment=settings.app_attest_environment, moment=settings.app_attest_verify_at or utcnow())
    except AttestationFailed as failed:
        raise Problem(422, "attestation-failed", str(failed), title="Unprocessable Content",
                      errors=[{"pointer": "/attestation", "detail": str(failed)}]) from failed
    if not await store.register_key(pool, user.sub, key):
        raise Problem(409, "key-already-registered", "This device key is already registered.")
    body_out = RegisteredKey(key_id=body.key_id, environment=key.environment)
    return JSONResponse(body_out.model_dump(), status_code=201)
