"""PostgreSQL connection pools, the same for every service: jsonb in and out as Python values."""
from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class _NoReset(asyncpg.Connection):
    def get_reset_query(self) -> str:
        return ""


async def create_pool(dsn: str, *, schema: str | None = None, reset: bool = True, **kwargs) -> asyncpg.Pool:
    """A pool whose unqualified names resolve in `schema` (a rebuild's, say) when one is given.

    `reset=False` skips the query asyncpg sends when a connection goes back to the pool (an open
    transaction is still rolled back): for a process that keeps no state on a session.
    """
    if not reset:
        kwargs["connection_class"] = _NoReset
    if schema:
        kwargs["server_settings"] = {**kwargs.get("server_settings", {}), "search_path": schema}
    return await asyncpg.create_pool(dsn, init=_init_connection, **kwargs)


@contextlib.asynccontextmanager
async def alone(pool: asyncpg.Pool, job: str) -> AsyncIterator[bool]:
    """Whether this process is the one to run `job` now: a transaction-level advisory lock held for
    the block, so among several processes (gateways) one runs it and the others skip this round. A
    process that dies mid-job drops its connection, and the lock with it."""
    async with pool.acquire() as conn, conn.transaction():
        yield await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", job)
