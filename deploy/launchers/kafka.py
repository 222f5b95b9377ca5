"""Apache Kafka 4.x in KRaft mode, one node or a cluster, from the broker jars on Maven Central."""
from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from deploy.launchers.process import ManagedProcess, wait_until
from shared.settings import Settings

KAFKA_DIR = Path(__file__).resolve().parent.parent / "kafka"
CACHE_DIR = Path(os.environ.get("POINTS_CACHE_DIR", Path.home() / ".cache" / "points-ledger"))


def jars_dir() -> Path:
    # The pom's content names the cache entry, so changing the Kafka version fetches anew.
    digest = base64.b32encode(uuid.uuid5(uuid.NAMESPACE_URL, (KAFKA_DIR / "pom.xml").read_text()).bytes)
    return CACHE_DIR / f"kafka-jars-{digest[:10].decode().lower()}"


def ensure_jars(echo=print) -> Path:
    target = jars_dir()
    if (target / ".complete").exists():
        return target
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed once to fetch the Kafka broker jars")
    echo(f"fetching the Apache Kafka broker jars with Maven into {target} (first run only)")
    partial = target.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(KAFKA_DIR / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={partial}", "-DincludeScope=runtime"],
        check=True,
    )
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    (target / ".complete").touch()
    return target


class KafkaLauncher:
    """One node of the local KRaft cluster (broker and controller in one process): node 1 of 1 is a
    single-node cluster, node i of N one of N voters of the controller quorum."""

    def __init__(self, settings: Settings, node: int = 1, *, name: str = "kafka"):
        self.settings, self.node, self.name = settings, node, name
        self.host, self.port = settings.broker_addresses[node - 1]
        # A single broker keeps the folder it always had; a cluster's nodes each have their own.
        self.home = settings.state_dir / ("kafka" if settings.brokers == 1 else f"kafka-{node}")
        self.process = ManagedProcess(name, settings.state_dir)

    @property
    def formatted(self) -> bool:
        return (self.home / "data" / "meta.properties").exists()

    def _quorum(self) -> str:
        if self.settings.brokers == 1:
            return f"controller.quorum.bootstrap.servers={self.host}:{self.port + 1}"
        return "controller.quorum.voters=" + ",".join(
            f"{number}@{host}:{port + 1}" for number, (host, port) in enumerate(self.settings.broker_addresses, 1))

    def _write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        props = (KAFKA_DIR / "server.properties").read_text().format(
            node_id=self.node, quorum=self._quorum(), host=self.host, port=self.port, controller_port=self.port + 1,
            log_dir=self.home / "data", replication=self.settings.replication_factor,
            min_isr=self.settings.min_insync_replicas)
        config = self.home / "server.properties"
        config.write_text(props)
        log4j = (KAFKA_DIR / "log4j2.properties").read_text().replace("{log_dir}", str(self.home))
        (self.home / "log4j2.properties").write_text(log4j)
        return config

    def _cluster_id(self) -> str:
        """One id for every node of the cluster, made by whichever is formatted first."""
        path = self.settings.state_dir / "kafka-cluster-id"
        if not path.exists():
            path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        return path.read_text().strip()

    def start(self, echo=print) -> None:
        if self.process.pid() is not None:
            return
        jars = ensure_jars(echo)
        config = self._write_config()
        classpath = f"{jars}/*"
        if not self.formatted:
            # A single node makes its own quorum; a cluster's voters are fixed in the config.
            standalone = ["--standalone"] if self.settings.brokers == 1 else []
            formatted = subprocess.run(
                ["java", "-cp", classpath, "kafka.tools.StorageTool", "format", *standalone, "--ignore-formatted",
                 # "=": a base64url id may begin with "-", which would read as an option
                 f"--cluster-id={self._cluster_id()}", "-c", str(config)],
                capture_output=True, text=True)
            if formatted.returncode != 0:
                raise RuntimeError(f"formatting Kafka's storage in {self.home / 'data'} failed: "
                                   f"{(formatted.stderr or formatted.stdout).strip()[-2000:]}")
        echo(f"starting {self.name}")
        heap = "768m" if self.settings.brokers == 1 else "512m"
        self.process.start(
            ["java", "-Xms256m", f"-Xmx{heap}", "-XX:+UseG1GC",
             f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
             "-cp", classpath, "kafka.Kafka", str(config)],
            cwd=self.home,
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        wait_until(lambda: asyncio.run(self._metadata_ok()), timeout=timeout, what=self.name)

    async def _metadata_ok(self) -> bool:
        """This node answers a metadata request (bootstrapping asks this node alone)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=f"{self.host}:{self.port}", request_timeout_ms=3000)
        await admin.start()
        try:
            await admin.list_topics()
            return True
        finally:
            await admin.close()

    def ready(self) -> bool:
        try:
            return asyncio.run(self._metadata_ok())
        except Exception:
            return False

    def stop(self) -> None:
        self.process.stop(timeout=30)
