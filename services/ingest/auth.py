"""Bearer JWTs: HS256 with a shared secret, or RS256/ES256 from a JWKS URL in production."""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import jwt

from services.ingest.problems import Problem
from shared.settings import Settings

Role = Literal["user", "admin", "merchant"]
ROLES: tuple[Role, ...] = ("user", "admin", "merchant")
# A user id is a key in every table and topic; longer ones cannot be indexed (PostgreSQL's btree
# limit is about 2,700 bytes), so they are refused at the door rather than poisoning the log.
MAX_SUBJECT_LENGTH = 255
# Far above any honest token (a few hundred bytes to 2 KB), far below what would cost us to parse.
MAX_TOKEN_LENGTH = 8192
DEV_ISSUER = "points-dev"
# Clocks differ a little between the identity provider and us.
LEEWAY_SECONDS = 60


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@dataclass(frozen=True)
class Principal:
    sub: str
    role: Role


# Tokens already verified, until they expire: an app sends the same token with every request, and
# checking it again (JSON, base64, HMAC or RSA) was a tenth of the gateway's CPU per event.
VERIFIED_TOKENS_KEPT = 10_000


class TokenVerifier:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True) if settings.jwks_url else None
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def verify(self, token: str) -> Principal:
        """The token's principal; only a token this verifier accepted before, byte for byte, and
        that has not expired since, skips the checks."""
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            self._verified.move_to_end(token)
            return known[0]
        principal, expires = self._check(token)
        self._verified[token] = (principal, expires)
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)
        return principal

    def _check(self, token: str) -> tuple[Principal, float]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise _unauthorized(f"The bearer token is longer than {MAX_TOKEN_LENGTH} characters.")
        settings = self._settings
        checks = {"options": {"require": ["exp", "iat", "sub", "aud"]}, "audience": settings.jwt_audience,
                  "leeway": LEEWAY_SECONDS}
        if settings.jwt_issuer:
            checks["issuer"] = settings.jwt_issuer
            checks["options"]["require"].append("iss")
        try:
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
                claims = jwt.decode(token, key, algorithms=["RS256", "ES256"], **checks)
            else:
                claims = jwt.decode(token, settings.jwt_secret.get_secret_value(), algorithms=["HS256"], **checks)
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"Invalid bearer token: {exc}") from exc
        if not isinstance(claims["iat"], (int, float)) or not isinstance(claims["exp"], (int, float)) \
                or claims["exp"] - claims["iat"] > settings.jwt_max_lifetime_seconds:
            raise _unauthorized(f"Tokens may live at most {settings.jwt_max_lifetime_seconds} seconds.")
        role = claims.get("role", "user")
        sub = claims["sub"]
        if role not in ROLES or not isinstance(sub, str) or not sub or "\x00" in sub:
            raise _unauthorized("The token's subject or role is not acceptable.")
        try:
            sub.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _unauthorized("The token's subject is not valid Unicode.") from exc
        if len(sub) > MAX_SUBJECT_LENGTH:
            raise _unauthorized(f"The token's subject is longer than {MAX_SUBJECT_LENGTH} characters.")
        return Principal(sub=sub, role=role), claims["exp"] + LEEWAY_SECONDS


def mint_dev_token(settings: Settings, sub: str, role: Role = "user", ttl: int = 3600) -> str:
    """A token signed with the local HS256 secret. Only for the dev secret, never a real one."""
    if settings.env == "prod" or not settings.uses_dev_jwt_secret:
        raise PermissionError("dev tokens are only minted with the dev secret; a production secret is configured")
    if ttl > settings.jwt_max_lifetime_seconds:
        raise ValueError(f"a token may live at most {settings.jwt_max_lifetime_seconds} seconds")
    now = int(time.time())
    claims = {"sub": sub, "role": role, "iat": now, "exp": now + ttl, "aud": settings.jwt_audience,
              "iss": settings.jwt_issuer or DEV_ISSUER}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
