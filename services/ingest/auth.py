"""Bearer JWTs: HS256 with a shared secret, or RS256/ES256 from a JWKS URL in production."""
from __future__ import annotations

import time
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


@dataclass(frozen=True)
class Principal:
    sub: str
    role: Role


class TokenVerifier:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True) if settings.jwks_url else None

    def verify(self, token: str) -> Principal:
        try:
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
                claims = jwt.decode(token, key, algorithms=["RS256", "ES256"], options={"require": ["exp", "sub"]})
            else:
                claims = jwt.decode(token, self._settings.jwt_secret.get_secret_value(), algorithms=["HS256"],
                                    options={"require": ["exp", "sub"]})
        except jwt.PyJWTError as exc:
            raise Problem(401, "unauthorized", f"Invalid bearer token: {exc}",
                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from exc
        role = claims.get("role", "user")
        sub = claims["sub"]
        if role not in ROLES or not isinstance(sub, str) or not sub or "\x00" in sub:
            raise Problem(401, "unauthorized", "The token's subject or role is not acceptable.",
                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if len(sub) > MAX_SUBJECT_LENGTH:
            raise Problem(401, "unauthorized", f"The token's subject is longer than {MAX_SUBJECT_LENGTH} characters.",
                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return Principal(sub=claims["sub"], role=role)


def mint_dev_token(settings: Settings, sub: str, role: Role = "user", ttl: int = 3600) -> str:
    """A token signed with the local HS256 secret. Only for the dev secret, never a real one."""
    if settings.env == "prod" or not settings.uses_dev_jwt_secret:
        raise PermissionError("dev tokens are only minted with the dev secret; a production secret is configured")
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": role, "iat": now, "exp": now + ttl},
                      settings.jwt_secret.get_secret_value(), algorithm="HS256")
