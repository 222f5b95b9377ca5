"""Rebuilding the read models from the log, and proving the live ones equal them.

A rebuild replays every topic the projector reads from offset 0 into a fresh schema, with the
same projector code and its own consumer group, up to where the live projector has read; then
each table is compared with the live one by row count and a checksum of its rows.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg

from services.projector.consumer import GROUP, Projector
from shared.schema import apply_migrations
from shared.db import create_pool
from shared.settings import Settings
from shared.signing import keyring_from

# Each projected table, its key, and the columns that record when a row was written rather than
# what the log says (so they differ between a live row and its rebuilt twin by design).
TABLES = {
    "points_events": ("id", {"created_at"}),
    "user_points_cache": ("user_id", {"updated_at"}),
    "coupons": ("coupon_id", set()),
    "fraud_insights": ("id", set()),
    "command_answers": ("command_id", set()),
}


@dataclass(frozen=True)
class TableComparison:
    table: str
    live_rows: int
    rebuilt_rows: int
    live_checksum: str
    rebuilt_checksum: str

    @property
    def matches(self) -> bool:
        return self.live_rows == self.rebuilt_rows and self.live_checksum == self.rebuilt_checksum


def new_schema_name() -> str:
    return "rebuild_" + datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S_%f")


def _checked(schema: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise ValueError(f"not a plain schema name: {schema!r}")
    return schema


async def create_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {_checked(schema)}")
    finally:
        await conn.close()
    await asyncio.to_thread(apply_migrations, dsn, schema)


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {_checked(schema)} CASCADE")
    finally:
        await conn.close()


async def table_fingerprint(pool: asyncpg.Pool, schema: str, table: str) -> tuple[int, str]:
    key, volatile = TABLES[table]
    columns = [r["column_name"] for r in await pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 "
        "ORDER BY column_name", schema, table)]
    kept = ", ".join(f'"{c}"' for c in columns if c not in volatile)
    row = await pool.fetchrow(
        f"SELECT count(*) AS n, coalesce(md5(string_agg(r::text, '|' ORDER BY r.k)), '') AS sum "
        f"FROM (SELECT {kept}, {key}::text AS k FROM {_checked(schema)}.{table}) r")
    return row["n"], row["sum"]


async def compare(pool: asyncpg.Pool, live: str, rebuilt: str) -> list[TableComparison]:
    results = []
    for table in TABLES:
        live_n, live_sum = await table_fingerprint(pool, live, table)
        new_n, new_sum = await table_fingerprint(pool, rebuilt, table)
        results.append(TableComparison(table, live_n, new_n, live_sum, new_sum))
    return results


async def live_positions(pool: asyncpg.Pool, live: str, group: str = GROUP) -> dict[tuple[str, int], int]:
    rows = await pool.fetch(f"SELECT topic, partition, next_offset FROM {_checked(live)}.projector_offsets "
                            "WHERE consumer_group = $1", group)
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def replay_into(settings: Settings, schema: str, until: dict[tuple[str, int], int],
                      topics: tuple[str, ...] | None = None, progress=None, stall_seconds: float = 120.0) -> None:
    """Project the log from offset 0 into `schema` until every partition has reached `until`.

    Gives up, naming the partitions short of their target, when nothing moves for `stall_seconds`.
    """
    pool = await create_pool(settings.dsn, schema=schema, min_size=1, max_size=2)
    kwargs = {"subscribed": topics} if topics else {}
    projector = Projector(settings.kafka_bootstrap_servers, pool, keyring_from(settings), group=f"points-{schema}",
                          **kwargs)
    await projector.start()
    runner = asyncio.create_task(projector.run())
    total = sum(until.values())
    loop = asyncio.get_running_loop()
    last_progress, last_moved = -1, loop.time()
    try:
        while True:
            done = await live_positions(pool, schema, projector.group)
            reached = sum(min(done.get(tp, 0), end) for tp, end in until.items())
            if progress:
                progress(reached, total)
            if all(done.get(tp, 0) >= end for tp, end in until.items()):
                return
            if runner.done():
                runner.result()  # re-raises what stopped it
            if reached != last_progress:
                last_progress, last_moved = reached, loop.time()
            elif loop.time() - last_moved > stall_seconds:
                short = {f"{t}/{p}": (done.get((t, p), 0), end) for (t, p), end in until.items()
                         if done.get((t, p), 0) < end}
                raise TimeoutError(f"replay stalled short of the live positions: {short}")
            await asyncio.sleep(0.2)
    finally:
        projector.running = False
        await asyncio.gather(runner, return_exceptions=True)
        await projector.stop()
        await pool.close()


async def rebuild_and_compare(settings: Settings, *, keep: bool = False, attempts: int = 5,
                              progress=None) -> tuple[str, list[TableComparison]]:
    """Replay the log into a fresh schema and compare it with the live one, table by table.

    While traffic flows the live tables move on during the comparison, so the rebuild catches
    up with the live projector and compares again, a few times, before reporting a difference.
    """
    schema = new_schema_name()
    await create_schema(settings.dsn, schema)
    pool = await create_pool(settings.dsn, min_size=1, max_size=2)
    try:
        for _ in range(attempts):
            await replay_into(settings, schema, await live_positions(pool, "public"), progress=progress)
            results = await compare(pool, "public", schema)
            if all(r.matches for r in results):
                break
        return schema, results
    finally:
        await pool.close()
        if not keep:
            await drop_schema(settings.dsn, schema)
