import base64
import time

import jwt
import pytest
from pydantic import ValidationError

from services.ingest.auth import TokenVerifier, mint_dev_token
from services.ingest.problems import Problem
from shared.settings import DEV_JWT_SECRET, Settings

REAL_SECRET = "a-real-secret-that-is-long-enough-0123456789"
PRODUCTION = {"POINTS_ENV": "prod", "POINTS_JWT_SECRET": REAL_SECRET, "COUPON_SECRET": REAL_SECRET,
              "POINTS_COUPON_CODE_KEY": REAL_SECRET + "-codes",
              "POINTS_SIGNING_KEY": base64.b64encode(bytes(range(32))).decode()}


def production(monkeypatch, **changes) -> None:
    """A production environment with every secret set, but for `changes` (None leaves one unset)."""
    for name, value in {**PRODUCTION, **changes}.items():
        if value is not None:
            monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """These tests read Settings from the environment: start each from none of ours."""
    import os

    for name in list(os.environ):
        if name.startswith(("POINTS_", "APP_ATTEST_", "PLAY_INTEGRITY_")) or name in ("COUPON_SECRET", "DATABASE_URL"):
            monkeypatch.delenv(name)


def test_production_refuses_the_dev_jwt_secret(monkeypatch):
    production(monkeypatch, POINTS_JWT_SECRET=None)
    with pytest.raises(ValidationError, match="POINTS_JWT_SECRET"):
        Settings()


def test_production_refuses_a_short_coupon_secret(monkeypatch):
    production(monkeypatch, COUPON_SECRET="too-short")
    with pytest.raises(ValidationError, match="COUPON_SECRET"):
        Settings()


def test_production_starts_with_real_secrets(monkeypatch):
    production(monkeypatch)
    assert Settings().env == "prod"


def test_production_refuses_the_dev_coupon_code_key(monkeypatch):
    production(monkeypatch, POINTS_COUPON_CODE_KEY=None)
    with pytest.raises(ValidationError, match="POINTS_COUPON_CODE_KEY"):
        Settings()


def test_production_refuses_to_sign_with_the_dev_key(monkeypatch):
    production(monkeypatch, POINTS_SIGNING_KEY=None)
    with pytest.raises(ValidationError, match="POINTS_SIGNING_KEY"):
        Settings()


def test_a_dev_token_carries_subject_and_role():
    settings = Settings(POINTS_ENV="dev")
    principal = TokenVerifier(settings).verify(mint_dev_token(settings, "alice", "admin", 60))
    assert (principal.sub, principal.role) == ("alice", "admin")


def test_dev_tokens_are_refused_once_a_real_secret_is_configured():
    with pytest.raises(PermissionError):
        mint_dev_token(Settings(POINTS_JWT_SECRET=REAL_SECRET), "alice")


@pytest.mark.parametrize("claims,key,alg", [
    ({"sub": "a", "exp": int(time.time()) - 1}, DEV_JWT_SECRET, "HS256"),
    ({"sub": "a", "exp": int(time.time()) + 60}, "another-key-entirely-0123456789abcdef", "HS256"),
    ({"sub": "a", "exp": int(time.time()) + 60}, None, "none"),
    ({"sub": "a"}, DEV_JWT_SECRET, "HS256"),
    ({"sub": "a", "exp": int(time.time()) + 60, "role": "root"}, DEV_JWT_SECRET, "HS256"),
])
def test_bad_tokens_are_unauthorized(claims, key, alg):
    with pytest.raises(Problem) as refused:
        TokenVerifier(Settings()).verify(jwt.encode(claims, key, algorithm=alg))
    assert refused.value.status == 401
