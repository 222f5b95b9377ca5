import base64
import json
import os
import time

import jwt
import pytest
from pydantic import ValidationError

from services.ingest.auth import TokenVerifier, mint_dev_token
from services.ingest.problems import Problem
from shared.settings import DEV_COUPON_SECRET, DEV_JWT_SECRET, Settings
from shared.signing import DEV_SIGNING_SEED

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


def test_without_being_told_it_is_a_dev_stack_a_process_refuses_the_public_dev_secrets():
    with pytest.raises(ValidationError, match="POINTS_JWT_SECRET"):
        Settings()


@pytest.mark.parametrize("changes,setting", [
    ({"POINTS_JWT_SECRET": "x"}, "POINTS_JWT_SECRET must be at least 32"),
    ({"POINTS_SIGNING_KEY": base64.b64encode(DEV_SIGNING_SEED).decode()}, "POINTS_SIGNING_KEY is the published dev key"),
    ({"POINTS_SIGNING_KEY": "bm90LWEta2V5"}, "32-byte Ed25519 seed"),
    ({"COUPON_PREVIOUS_SECRETS": json.dumps({"k0": DEV_COUPON_SECRET})}, "COUPON_PREVIOUS_SECRETS may not hold"),
    ({"COUPON_PREVIOUS_SECRETS": json.dumps({"k0": "short"})}, "COUPON_PREVIOUS_SECRETS may not hold"),
    ({"COUPON_PREVIOUS_SECRETS": "[1, 2]"}, "COUPON_PREVIOUS_SECRETS must be a JSON object"),
    ({"POINTS_COUPON_CODE_KEY": REAL_SECRET}, "COUPON_SECRET and POINTS_COUPON_CODE_KEY must differ"),
    ({"POINTS_JWKS_URL": "http://id.example.com/jwks.json", "POINTS_JWT_ISSUER": "https://id.example.com/"},
     "POINTS_JWKS_URL must be an https"),
    ({"POINTS_JWKS_URL": "https://id.example.com/jwks.json"}, "POINTS_JWT_ISSUER must be set"),
    ({"POINTS_RECORD_CLIENT_IP": "true"}, "POINTS_CLIENT_IP_KEY must be set"),
    ({"POINTS_ALERT_WEBHOOK_SECRET": "short"}, "POINTS_ALERT_WEBHOOK_SECRET must be at least"),
])
def test_production_refuses_each_unsafe_secret_naming_the_setting(monkeypatch, changes, setting):
    production(monkeypatch, **changes)
    with pytest.raises(ValidationError, match=setting):
        Settings()


def test_production_accepts_an_https_jwks_url_and_rotated_out_secrets(monkeypatch):
    production(monkeypatch, POINTS_JWT_SECRET=None, POINTS_JWKS_URL="https://id.example.com/jwks.json",
               POINTS_JWT_ISSUER="https://id.example.com/",
               COUPON_PREVIOUS_SECRETS=json.dumps({"k0": "an-older-secret-that-is-long-enough-000"}))
    assert Settings().jwks_url.startswith("https://")


def test_the_points_command_runs_a_dev_stack_unless_told_otherwise(monkeypatch):
    import subprocess
    import sys

    minted = subprocess.run([sys.executable, "-m", "deploy.cli", "dev-token", "--sub", "alice"], capture_output=True,
                            text=True, env={k: v for k, v in os.environ.items() if k != "POINTS_ENV"})
    refused = subprocess.run([sys.executable, "-m", "deploy.cli", "dev-token", "--sub", "alice"], capture_output=True,
                             text=True, env={**os.environ, "POINTS_ENV": "prod"})
    assert minted.returncode == 0 and minted.stdout.count(".") == 2
    assert refused.returncode != 0


def test_a_token_with_every_claim_in_order_is_accepted():
    principal = TokenVerifier(Settings(POINTS_ENV="test")).verify(jwt.encode(claims(), DEV_JWT_SECRET, algorithm="HS256"))
    assert principal.sub == "a"


def test_a_token_longer_than_any_honest_one_is_refused_before_it_is_parsed():
    with pytest.raises(Problem) as refused:
        TokenVerifier(Settings(POINTS_ENV="test")).verify("e" * 9000)
    assert refused.value.status == 401 and "8192" in refused.value.detail


def test_a_dev_token_carries_subject_and_role():
    settings = Settings(POINTS_ENV="dev")
    principal = TokenVerifier(settings).verify(mint_dev_token(settings, "alice", "admin", 60))
    assert (principal.sub, principal.role) == ("alice", "admin")


def test_a_token_verified_once_is_remembered_until_it_expires_and_only_byte_for_byte(monkeypatch):
    verifier = TokenVerifier(Settings(POINTS_ENV="test"))
    token = jwt.encode(claims(), DEV_JWT_SECRET, algorithm="HS256")
    decoded, real_decode = [], jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append(a[0]) or real_decode(*a, **k))

    first, again = verifier.verify(token), verifier.verify(token)
    header, payload, signature = token.split(".")
    with pytest.raises(Problem):  # not the remembered string: checked in full, and refused
        verifier.verify(f"{header}.{payload}.{signature[:-2]}AA")
    later = claims()["exp"] + 61
    monkeypatch.setattr("services.ingest.auth.time.time", lambda: later)
    verifier.verify(token)  # past its expiry and the leeway by our clock: checked again in full

    assert first == again and first.sub == "a"
    assert decoded == [token, f"{header}.{payload}.{signature[:-2]}AA", token]


def test_dev_tokens_are_refused_once_a_real_secret_is_configured():
    with pytest.raises(PermissionError):
        mint_dev_token(Settings(POINTS_ENV="dev", POINTS_JWT_SECRET=REAL_SECRET), "alice")


DROP = object()


def claims(**changes) -> dict:
    """A valid token's claims, made when the test runs (never at collection), with `changes` applied:
    a callable gets the current time, DROP removes the claim."""
    now = int(time.time())
    made = {"sub": "a", "iat": now, "exp": now + 60, "aud": "points-ledger"}
    made.update({k: (v(now) if callable(v) else v) for k, v in changes.items()})
    return {k: v for k, v in made.items() if v is not DROP}


@pytest.mark.parametrize("changes,key,alg", [
    ({"exp": lambda now: now - 100, "iat": lambda now: now - 200}, DEV_JWT_SECRET, "HS256"),
    ({"aud": "another-service"}, DEV_JWT_SECRET, "HS256"),
    ({"aud": DROP}, DEV_JWT_SECRET, "HS256"),
    ({"iat": DROP}, DEV_JWT_SECRET, "HS256"),
    ({"exp": DROP}, DEV_JWT_SECRET, "HS256"),
    ({"exp": lambda now: now + 2 * 24 * 3600}, DEV_JWT_SECRET, "HS256"),
    ({"sub": "x" * 256}, DEV_JWT_SECRET, "HS256"),
    ({"sub": "\ud800"}, DEV_JWT_SECRET, "HS256"),
    ({"role": "root"}, DEV_JWT_SECRET, "HS256"),
    ({}, "another-key-entirely-0123456789abcdef", "HS256"),
    ({}, None, "none"),
])
def test_bad_tokens_are_unauthorized(changes, key, alg):
    with pytest.raises(Problem) as refused:
        TokenVerifier(Settings(POINTS_ENV="test")).verify(jwt.encode(claims(**changes), key, algorithm=alg))
    assert refused.value.status == 401


def test_points_secrets_writes_an_env_file_production_accepts_and_never_overwrites_it(tmp_path, monkeypatch):
    import subprocess
    import sys

    target = tmp_path / ".env.points"
    made = subprocess.run([sys.executable, "-m", "deploy.cli", "secrets", "--output", str(target)],
                          capture_output=True, text=True)
    again = subprocess.run([sys.executable, "-m", "deploy.cli", "secrets", "--output", str(target)],
                           capture_output=True, text=True)

    assert made.returncode == 0 and again.returncode == 1 and "refused" in again.stderr
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    for line in target.read_text().splitlines():
        name, _, value = line.partition("=")
        monkeypatch.setenv(name, value)
    assert Settings().env == "prod"  # every check of production passes with what it wrote
