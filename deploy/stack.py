"""The local system as a whole: which parts there are, how to start, check and stop them."""
from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

import asyncpg
import httpx

from deploy.launchers.kafka import KafkaLauncher
from deploy.launchers.postgres import PostgresLauncher
from deploy.launchers.process import ManagedProcess, wait_until
from services.projector.schema import apply_migrations
from shared.topic_admin import Layout, ensure_topics
from shared.settings import REPO_ROOT, Settings


@dataclass(frozen=True)
class Service:
    name: str
    module: str
    ready_url: str

    def process(self, settings: Settings) -> ManagedProcess:
        return ManagedProcess(self.name, settings.state_dir)

    def ready(self) -> bool:
        try:
            return httpx.get(self.ready_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


EXAMPLE_TEMPLATES = [
    ("$5 Starbucks", "Starbucks", 500, 30),
    ("$10 Amazon", "Amazon", 1000, 90),
    ("Free cinema ticket", "Cineworld", 1500, 60),
]


async def seed_example_templates(dsn: str) -> None:
    """A few coupons to try on a local system; only when there are none yet."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT count(*) FROM coupon_templates") == 0:
            await conn.executemany(
                "INSERT INTO coupon_templates (template_id, name, partner, points_cost, valid_days) "
                "VALUES (gen_random_uuid(), $1, $2, $3, $4)", EXAMPLE_TEMPLATES)
    finally:
        await conn.close()


async def set_service_passwords(settings: Settings) -> None:
    """A service URL that carries a password sets that role's password (the owner runs this)."""
    from urllib.parse import unquote, urlsplit

    from shared.settings import SERVICE_ROLES

    wanted = {}
    for service, role in SERVICE_ROLES.items():
        url = settings.service_urls[service]
        if url is not None and urlsplit(url.get_secret_value()).password:
            wanted[role] = unquote(urlsplit(url.get_secret_value()).password)
    if settings.reader_db_password is not None:
        wanted["points_reader"] = settings.reader_db_password.get_secret_value()
    if not wanted:
        return
    conn = await asyncpg.connect(settings.dsn)
    try:
        for role, password in wanted.items():
            await conn.execute(await conn.fetchval("SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)",
                                                   role, password))
    finally:
        await conn.close()


class Stack:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.kafka = KafkaLauncher(settings)
        self.postgres = PostgresLauncher(settings) if settings.uses_embedded_postgres else None
        self.services = [
            Service("projector", "services.projector", f"http://127.0.0.1:{settings.projector_port}/readyz"),
            Service("validator", "services.validator", f"http://127.0.0.1:{settings.validator_port}/readyz"),
            Service("redeemer", "services.redeemer", f"http://127.0.0.1:{settings.redeemer_port}/readyz"),
            Service("ingest", "services.ingest", f"{settings.gateway_url}/readyz"),
        ]

    def _infrastructure(self):
        kafka = self.kafka if self.settings.manage_kafka else None
        return [part for part in (kafka, self.postgres) if part is not None]

    def up(self, echo=print) -> None:
        """Start whatever is not running, then wait until every part answers ready. Idempotent."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        for part in self._infrastructure():
            part.start(echo)
        for part in self._infrastructure():
            echo(f"waiting for {part.name}")
            part.wait_ready()
        self.prepare(echo)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        for service in self.services:
            process = service.process(self.settings)
            if process.pid() is None:
                echo(f"starting {service.name}")
                process.start([sys.executable, "-m", service.module], env=env, cwd=REPO_ROOT)
        for service in self.services:
            echo(f"waiting for {service.name}")
            process = service.process(self.settings)

            def ready(service=service, process=process) -> bool:
                if process.pid() is None:
                    raise RuntimeError(f"{service.name} exited; see {process.log_file}")
                return service.ready()

            wait_until(ready, timeout=120, what=service.name)

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def heal(self, echo=print, patience: float = 90.0) -> None:
        """Start what died; restart what lives but has not become ready within `patience` seconds."""
        for _ in range(3):
            self.up(echo)
            stuck = []
            for service in self.services:
                try:
                    wait_until(service.ready, timeout=patience, what=service.name)
                except TimeoutError:
                    stuck.append(service)
            if not stuck:
                return
            for service in stuck:
                echo(f"restarting {service.name}, alive but not ready")
                service.process(self.settings).stop(timeout=10)
        raise RuntimeError("the system did not become ready")

    def restart_infrastructure(self, name: str, echo=print) -> None:
        part = {"kafka": self.kafka, "postgres": self.postgres}[name]
        if part is None or (name == "kafka" and not self.settings.manage_kafka):
            raise RuntimeError(f"{name} is not run by this stack")
        part.stop()
        part.start(echo)
        part.wait_ready()

    def layout(self) -> Layout:
        return Layout(self.settings.topic_partitions, self.settings.topic_replication_factor,
                      self.settings.min_insync_replicas)

    def prepare(self, echo=print) -> None:
        """Topics and schema, on infrastructure that is already running (ours or someone else's).

        Every topic is made (or repaired) before any service starts, so no consumer ever subscribes
        to a topic that is not there yet; a topic in a shape that cannot be repaired stops `up` here.
        """
        if not self.settings.manage_kafka:
            echo("waiting for Kafka")
            self.kafka.wait_ready()
        echo("checking topics")
        asyncio.run(ensure_topics(self.settings.kafka_bootstrap_servers, self.layout(), echo=echo))
        echo("applying migrations")
        apply_migrations(self.settings.dsn)
        asyncio.run(set_service_passwords(self.settings))
        if self.settings.env != "prod":
            asyncio.run(seed_example_templates(self.settings.dsn))

    def down(self, echo=print) -> None:
        for service in reversed(self.services):
            echo(f"stopping {service.name}")
            service.process(self.settings).stop()
        for part in reversed(self._infrastructure()):
            echo(f"stopping {part.name}")
            part.stop()

    def status(self) -> dict:
        services = {}
        for part in self._infrastructure():
            pid = part.process.pid()
            services[part.name] = {"pid": pid, "ready": pid is not None and part.ready()}
        for service in self.services:
            pid = service.process(self.settings).pid()
            services[service.name] = {"pid": pid, "ready": pid is not None and service.ready()}
        return {
            "gateway_url": self.settings.gateway_url,
            # Every gateway (API.md): one per instance; `gateway_url` is the first.
            "gateway_urls": [self.settings.gateway_url],
            "database_url": self.settings.dsn,
            "kafka_bootstrap": self.settings.kafka_bootstrap_servers,
            "metrics_urls": self.settings.metrics_urls,
            "services": services,
            "state_dir": str(self.settings.state_dir),
        }
