"""The local system as a whole: which parts there are, how to start, check and stop them."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass

import asyncpg
import httpx
from pydantic import SecretStr

from deploy.launchers.kafka import KafkaLauncher
from deploy.launchers.monitoring import AlertmanagerLauncher, PrometheusLauncher
from deploy.launchers.postgres import PostgresLauncher
from deploy.launchers.process import ManagedProcess, wait_until
from shared.schema import apply_migrations
from shared.topic_admin import Layout, ensure_topics
from shared.settings import DEV_ALERT_WEBHOOK_SECRET, REPO_ROOT, SHAPE_FILE, Settings, recorded_shape


# The services in the order they start: the gateway last, once what answers its commands runs.
KINDS = (("projector", "services.projector"), ("validator", "services.validator"),
         ("redeemer", "services.redeemer"), ("ingest", "services.ingest"))


@dataclass(frozen=True)
class Service:
    name: str  # the process: `ingest`, or `ingest-2` when several instances run
    kind: str  # the service: `ingest`
    module: str
    settings: Settings  # this instance's: its own ports

    @property
    def ready_url(self) -> str:
        base = self.settings.gateway_url if self.kind == "ingest" else \
            f"http://127.0.0.1:{getattr(self.settings, f'{self.kind}_port')}"
        return f"{base}/readyz"

    def process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.settings.state_dir)

    def ready(self) -> bool:
        try:
            return httpx.get(self.ready_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


class ShapeChanged(RuntimeError):
    """`up` asked for another number of brokers or instances than the state folder holds."""


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
        if settings.monitoring and settings.alert_webhook_secret is None and settings.env != "prod":
            # Alertmanager and the gateways must share a secret; a dev stack gets the dev one.
            settings = settings.model_copy(update={"alert_webhook_secret": SecretStr(DEV_ALERT_WEBHOOK_SECRET)})
        self.settings = settings
        # Numbered names (kafka-1, ingest-1, ...) once there is more than one of anything.
        self.clustered = settings.brokers > 1 or settings.instances > 1
        self.brokers = [KafkaLauncher(settings, node, name=f"kafka-{node}" if self.clustered else "kafka")
                        for node in range(1, settings.brokers + 1)]
        self.kafka = self.brokers[0]
        self.postgres = PostgresLauncher(settings) if settings.uses_embedded_postgres else None
        self.services = [
            Service(f"{kind}-{number}" if self.clustered else kind, kind, module, settings.for_instance(number))
            for number in range(1, settings.instances + 1) for kind, module in KINDS]
        self.monitoring = [PrometheusLauncher(settings), AlertmanagerLauncher(settings)]

    def infrastructure(self):
        brokers = self.brokers if self.settings.manage_kafka else []
        # Prometheus and Alertmanager when asked for, or still running from an `up --monitoring`.
        watching = [part for part in self.monitoring if self.settings.monitoring or part.process.pid() is not None]
        return [part for part in (*brokers, self.postgres, *watching) if part is not None]

    def _check_shape(self) -> None:
        """A running system keeps its shape until `down`; a cluster's data needs as many brokers as it has."""
        settings = self.settings
        recorded = recorded_shape(settings.state_dir)
        if not recorded and (settings.state_dir / "kafka" / "data" / "meta.properties").exists():
            recorded = {"brokers": 1, "instances": 1}  # a state folder from before shapes were recorded
        wanted = {"brokers": settings.brokers, "instances": settings.instances}
        if not recorded or recorded == wanted:
            return
        running = [p.name for p in ManagedProcess.all(settings.state_dir) if p.pid() is not None]
        if running:
            raise ShapeChanged(f"{', '.join(sorted(running))} already run as {recorded['brokers']} broker(s) and "
                               f"{recorded['instances']} instance(s); run `points down` before changing the shape")
        if recorded["brokers"] != settings.brokers and settings.manage_kafka and any(
                (settings.state_dir / d / "data" / "meta.properties").exists() for d in ("kafka", "kafka-1")):
            raise ShapeChanged(f"{settings.state_dir} holds the log of a {recorded['brokers']}-broker cluster, "
                               f"which {settings.brokers} broker(s) cannot take over: use another POINTS_STATE_DIR, "
                               f"or remove {settings.state_dir} to start from nothing")

    def up(self, echo=print) -> None:
        """Start whatever is not running, then wait until every part answers ready. Idempotent."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self._check_shape()
        (self.settings.state_dir / SHAPE_FILE).write_text(json.dumps(
            {"brokers": self.settings.brokers, "instances": self.settings.instances}))
        for part in self.infrastructure():
            part.start(echo)
        for part in self.infrastructure():
            echo(f"waiting for {part.name}")
            part.wait_ready()
        self.prepare(echo)
        for service in self.services:
            process = service.process()
            if process.pid() is None:
                echo(f"starting {service.name}")
                env = {**os.environ, **service.settings.as_environment(), "PYTHONPATH": str(REPO_ROOT)}
                process.start([sys.executable, "-m", service.module], env=env, cwd=REPO_ROOT)
        for service in self.services:
            echo(f"waiting for {service.name}")
            process = service.process()

            def ready(service=service, process=process) -> bool:
                if process.pid() is None:
                    raise RuntimeError(f"{service.name} exited; see {process.log_file}, which ends:\n{process.tail()}")
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
                service.process().stop(timeout=10)
        raise RuntimeError("the system did not become ready")

    def part(self, name: str):
        """A broker or PostgreSQL, by its name in `status`."""
        part = next((p for p in self.infrastructure() if p.name == name), None)
        if part is None:
            raise RuntimeError(f"{name} is not run by this stack")
        return part

    def restart_infrastructure(self, name: str, echo=print) -> None:
        part = self.part(name)
        part.stop()
        part.start(echo)
        part.wait_ready()

    def layout(self) -> Layout:
        return Layout(self.settings.topic_partitions, self.settings.replication_factor,
                      self.settings.min_insync_replicas)

    def prepare(self, echo=print) -> None:
        """Topics and schema, on infrastructure that is already running (ours or someone else's).

        Every topic is made (or repaired) before any service starts, so no consumer ever subscribes
        to a topic that is not there yet; a topic in a shape that cannot be repaired stops `up` here.
        """
        if not self.settings.manage_kafka:
            echo("waiting for Kafka")
            self.brokers[0].wait_ready()
        echo("checking topics")
        asyncio.run(ensure_topics(self.settings.kafka_bootstrap_servers, self.layout(), echo=echo))
        echo("applying migrations")
        apply_migrations(self.settings.dsn)
        asyncio.run(set_service_passwords(self.settings))
        if self.settings.env != "prod":
            asyncio.run(seed_example_templates(self.settings.dsn))

    def stop_services(self, echo=print) -> None:
        """Stop every service, last started first; Kafka and PostgreSQL keep running."""
        for service in reversed(self.services):
            echo(f"stopping {service.name}")
            service.process().stop()

    def down(self, echo=print) -> None:
        self.stop_services(echo)
        for part in reversed(self.infrastructure()):
            echo(f"stopping {part.name}")
            part.stop()

    @property
    def gateway_urls(self) -> list[str]:
        """Every gateway, one per instance, the first instance's first."""
        return [s.settings.gateway_url for s in self.services if s.kind == "ingest"]

    def pids(self) -> dict[str, int | None]:
        """Every process of the stack by its name in `status`: its pid, or None when it is not running."""
        return {**{part.name: part.process.pid() for part in self.infrastructure()},
                **{service.name: service.process().pid() for service in self.services}}

    def status(self) -> dict:
        parts = {part.name: part for part in (*self.infrastructure(), *self.services)}
        services = {name: {"pid": pid, "ready": pid is not None and parts[name].ready()}
                    for name, pid in self.pids().items()}
        return {
            "gateway_url": self.gateway_urls[0],
            # Every gateway (API.md): one per instance; `gateway_url` is the first.
            "gateway_urls": self.gateway_urls,
            "database_url": self.settings.dsn,
            "kafka_bootstrap": self.settings.kafka_bootstrap_servers,
            "metrics_urls": {s.name: s.settings.metrics_urls[s.kind] for s in self.services},
            "services": services,
            "state_dir": str(self.settings.state_dir),
        }
