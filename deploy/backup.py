"""A backup of this system, and putting one back.

What is worth keeping: the log is the truth, and Kafka keeps more than the topics in its log
directories: the consumer groups' committed offsets and the transactions' state, without which the
validator and the redeemer would not know what they had already decided. So a backup is each
broker's log directory, copied while the brokers are stopped (a consistent cut, nothing half
written), and a dump of the database made by PostgreSQL's own pg_dump, the server's version
(the embedded server is PostgreSQL 18; an older pg_dump refuses it). The dump holds the gateway's
own tables (claimed nonces, Idempotency-Keys, flags, templates, device keys), which are not in
the log, and the read models, which could also be rebuilt from it (`points rebuild`).

The services are stopped for the copy and started again after: a backup is a few seconds of
downtime, not a risk to what was acknowledged (the gateways answer 503 meanwhile, and clients retry).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

from deploy.launchers.postgres import _bin
from deploy.stack import Stack

MANIFEST = "manifest.json"
DUMP = "postgres.dump"


class BackupRefused(RuntimeError):
    pass


def _archive_name(broker) -> str:
    return f"{broker.name}.tar.gz"


def _check_runs_here(stack: Stack) -> None:
    if not stack.settings.manage_kafka:
        raise BackupRefused("Kafka is not run by `points up` here: back its log directories up with the tools of "
                            "whoever runs it (docs/operations.md)")


def backup(stack: Stack, target: Path, echo=print) -> dict:
    """Write a backup into `target` (a new folder); the system runs again afterwards. Its manifest."""
    _check_runs_here(stack)
    if target.exists() and any(target.iterdir()):
        raise BackupRefused(f"{target} is not empty: a backup goes into a folder of its own")
    target.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        stack.stop_services(echo)
        echo("dumping PostgreSQL (pg_dump, custom format)")
        subprocess.run([_bin("pg_dump"), "--format=custom", f"--file={target / DUMP}", stack.settings.dsn],
                       check=True, capture_output=True, text=True)
        for broker in stack.brokers:
            echo(f"stopping {broker.name} and copying its log directory")
            broker.stop()
            with tarfile.open(target / _archive_name(broker), "w:gz") as archive:
                archive.add(broker.home / "data", arcname="data")
    finally:
        echo("starting the system again")
        stack.up(echo=lambda _: None)
    manifest = {"taken_at": datetime.now(timezone.utc).isoformat(), "brokers": stack.settings.brokers,
                "instances": stack.settings.instances, "seconds": round(time.monotonic() - started, 1),
                "files": sorted(p.name for p in target.iterdir())}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def restore(stack: Stack, source: Path, echo=print) -> dict:
    """Put the system back as it was when the backup in `source` was taken; it runs again afterwards.

    The database is replaced whole; its roles (global to the PostgreSQL server) must exist, as they
    do once `points up` has run here once."""
    _check_runs_here(stack)
    manifest_file = source / MANIFEST
    if not manifest_file.exists():
        raise BackupRefused(f"{source} holds no {MANIFEST}: not a backup made by `points backup`")
    manifest = json.loads(manifest_file.read_text())
    if manifest["brokers"] != stack.settings.brokers:
        raise BackupRefused(f"the backup is of {manifest['brokers']} broker(s), this system has "
                            f"{stack.settings.brokers}: start it with --brokers {manifest['brokers']}")
    missing = [name for name in [DUMP, *map(_archive_name, stack.brokers)] if not (source / name).exists()]
    if missing:
        raise BackupRefused(f"{source} lacks {', '.join(missing)}")
    try:
        stack.stop_services(echo)
        for broker in stack.brokers:
            echo(f"stopping {broker.name} and putting its log directory back")
            broker.stop()
            shutil.rmtree(broker.home / "data", ignore_errors=True)
            with tarfile.open(source / _archive_name(broker)) as archive:
                archive.extractall(broker.home, filter="data")
        echo("replacing the database with the dump (pg_restore)")
        _replace_database(stack, source / DUMP)
    finally:
        echo("starting the system again")
        stack.up(echo=lambda _: None)
    return manifest


def _replace_database(stack: Stack, dump: Path) -> None:
    import asyncio

    import asyncpg

    dsn = stack.settings.dsn
    database = dsn.rsplit("/", 1)[-1].split("?")[0]
    maintenance = dsn.rsplit("/", 1)[0] + "/postgres"

    async def recreate() -> None:
        conn = await asyncpg.connect(maintenance)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()

    if stack.postgres is not None:
        stack.postgres.start(echo=lambda _: None)
        stack.postgres.wait_ready()
    asyncio.run(recreate())
    subprocess.run([_bin("pg_restore"), "--exit-on-error", f"--dbname={dsn}", str(dump)],
                   check=True, capture_output=True, text=True)
