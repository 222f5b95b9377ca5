"""PostgreSQL connection pools, the same for every service: jsonb in and out as Python values."""
from __future__ import annotations

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, schema: str | None = None, **kwargs) -> asyncpg.Pool:
    """A pool whose unqualified names resolve in `schema` (a rebuild's, say) when one is given."""
    if schema:
        kwargs["server_settings"] = {**kwargs.get("server_settings", {}), "search_path": schema}
    return await asyncpg.create_pool(dsn, init=_init_connection, **kwargs)
