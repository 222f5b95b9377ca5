"""The gateway's dependencies, one place: settings, adapters, and who is asking."""
from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

# Every dependency is `async def`: FastAPI runs a plain `def` in its thread pool, a thread hop per
# dependency per request.

from services.ingest import ports
from services.ingest.auth import Principal, TokenVerifier
from services.ingest.flags import FlagCache, check_write_allowed
from services.ingest.problems import Problem
from shared.settings import Settings

_bearer = HTTPBearer(auto_error=False)


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def get_ports(request: Request) -> ports.Ports:
    return request.app.state.ports


async def get_flags(request: Request) -> FlagCache:
    return request.app.state.flags


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise Problem(401, "unauthorized", "A bearer token is required.", headers={"WWW-Authenticate": "Bearer"})
    return credentials.credentials


def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None, roles: tuple[str, ...]) -> Principal:
    return _verified(request.app.state.verifier, _token(credentials), roles)


def _verified(verifier: TokenVerifier, token: str, roles: tuple[str, ...]) -> Principal:
    principal = verifier.verify(token)
    if principal.role not in roles:
        raise Problem(403, "forbidden", f"This needs the role {' or '.join(roles)}.")
    return principal


# Who is asking is one dependency, not a chain (role check -> principal -> bearer): FastAPI resolves
# each level of a chain anew on every request, and the chain was a tenth of a submission's CPU.
def require_role(*roles: str):
    async def check(request: Request, credentials: Bearer) -> Principal:
        return _principal(request, credentials, roles)

    return check


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
AppUser = Annotated[Principal, Depends(require_role("user"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
FlagsDep = Annotated[FlagCache, Depends(get_flags)]
Ports = Annotated[ports.Ports, Depends(get_ports)]


async def writes_allowed(request: Request, credentials: Bearer) -> Principal:
    """An app user, if the kill switch and the canary let their writes through."""
    return writing_user(request.app.state, _token(credentials))


def writing_user(state, token: str) -> Principal:
    """The app user the token names, if the kill switch and the canary let their writes through;
    raises the Problem to answer otherwise. `state`: the app's (its verifier and flag cache)."""
    user = _verified(state.verifier, token, ("user",))
    check_write_allowed(state.flags.current, user.sub)
    return user


WritingUser = Annotated[Principal, Depends(writes_allowed)]
