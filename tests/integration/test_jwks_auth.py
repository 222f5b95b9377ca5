"""In production, tokens are RS256 or ES256, verified against the keys of a JWKS URL."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from deploy.launchers.process import ManagedProcess, wait_until
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration

ISSUER = "https://id.example.com/"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwks() -> dict:
    keys = []
    for kid, key, algorithm, alg in (("rsa-1", RSA_KEY, RSAAlgorithm, "RS256"), ("ec-1", EC_KEY, ECAlgorithm, "ES256")):
        jwk = json.loads(algorithm.to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
    return {"keys": keys}


@pytest.fixture(scope="module")
def jwks_gateway(stack):
    document = json.dumps(jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = stack.settings.gateway_port + 20
    process = ManagedProcess("ingest-jwks", stack.settings.state_dir)
    process.start([sys.executable, "-m", "services.ingest"], cwd=REPO_ROOT, env={
        **os.environ, "POINTS_GATEWAY_PORT": str(port),
        "POINTS_JWKS_URL": f"http://127.0.0.1:{server.server_port}/jwks.json", "POINTS_JWT_ISSUER": ISSUER})
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, timeout=60, what="jwks gateway")
    yield url
    process.stop()
    server.shutdown()


def token(key, alg: str, kid: str, **claims) -> str:
    now = int(time.time())
    body = {"sub": "jwks-user", "iat": now, "exp": now + 300, "aud": "points-ledger", "iss": ISSUER, **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


@pytest.mark.parametrize("key,alg,kid", [(RSA_KEY, "RS256", "rsa-1"), (EC_KEY, "ES256", "ec-1")])
def test_tokens_signed_by_a_published_key_are_accepted(jwks_gateway, key, alg, kid):
    response = httpx.get(f"{jwks_gateway}/v1/me/points",
                         headers={"Authorization": f"Bearer {token(key, alg, kid)}"})
    assert response.status_code == 200
    assert response.json()["user_id"] == "jwks-user"


def test_a_token_signed_by_an_unpublished_key_is_refused(jwks_gateway):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = httpx.get(f"{jwks_gateway}/v1/me/points",
                         headers={"Authorization": f"Bearer {token(stranger, 'RS256', 'rsa-1')}"})
    assert response.status_code == 401


def test_the_dev_hs256_secret_is_not_accepted_once_a_jwks_url_is_set(jwks_gateway, stack):
    from services.ingest.auth import mint_dev_token

    response = httpx.get(f"{jwks_gateway}/v1/me/points",
                         headers={"Authorization": f"Bearer {mint_dev_token(stack.settings, 'x')}"})
    assert response.status_code == 401


@pytest.mark.parametrize("claims", [{"aud": "another-service"}, {"iss": "https://evil.example.com/"},
                                    {"exp": int(time.time()) + 3 * 24 * 3600}, {"iat": None}])
def test_a_token_for_another_audience_issuer_or_too_long_a_life_is_refused(jwks_gateway, claims):
    body = {name: value for name, value in claims.items() if value is not None}
    forged = token(RSA_KEY, "RS256", "rsa-1", **body)
    if "iat" in claims:
        forged = jwt.encode({k: v for k, v in jwt.decode(forged, options={"verify_signature": False}).items()
                             if k != "iat"}, RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    response = httpx.get(f"{jwks_gateway}/v1/me/points", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_an_expired_token_is_refused(jwks_gateway):
    # Past the 60 s allowed for clock skew between the identity provider and us.
    expired = token(RSA_KEY, "RS256", "rsa-1", iat=int(time.time()) - 600, exp=int(time.time()) - 120)
    response = httpx.get(f"{jwks_gateway}/v1/me/points", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
