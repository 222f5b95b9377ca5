"""Apache Kafka 4.x, single-node KRaft, from the broker jars on Maven Central."""
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


def _host_port(settings: Settings) -> tuple[str, int]:
    first = settings.kafka_bootstrap_servers.split(",")[0]
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port)


class KafkaLauncher:
    name = "kafka"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = settings.state_dir / "kafka"
        self.process = ManagedProcess("kafka", settings.state_dir)

    def _write_config(self) -> Path:
        host, port = _host_port(self.settings)
        self.home.mkdir(parents=True, exist_ok=True)
        props = (KAFKA_DIR / "server.properties").read_text().format(
            host=host, port=port, controller_port=port + 1, log_dir=self.home / "data",
        )
        config = self.home / "server.properties"
        config.write_text(props)
        log4j = (KAFKA_DIR / "log4j2.properties").read_text().replace("{log_dir}", str(self.home))
        (self.home / "log4j2.properties").write_text(log4j)
        return config

    def start(self, echo=print) -> None:
        if self.process.pid() is not None:
            return
        jars = ensure_jars(echo)
        config = self._write_config()
        classpath = f"{jars}/*"
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            formatted = subprocess.run(
                ["java", "-cp", classpath, "kafka.tools.StorageTool", "format", "--standalone", "--ignore-formatted",
                 "-t", cluster_id, "-c", str(config)],
                capture_output=True, text=True)
            if formatted.returncode != 0:
                raise RuntimeError(f"formatting Kafka's storage in {self.home / 'data'} failed: "
                                   f"{(formatted.stderr or formatted.stdout).strip()[-2000:]}")
        echo("starting Kafka")
        self.process.start(
            ["java", "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
             f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
             "-cp", classpath, "kafka.Kafka", str(config)],
            cwd=self.home,
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        wait_until(lambda: asyncio.run(self._metadata_ok()), timeout=timeout, what="Kafka")

    async def _metadata_ok(self) -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                    request_timeout_ms=3000)
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
