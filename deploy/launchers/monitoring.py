"""Prometheus and Alertmanager beside the local stack (`points up --monitoring`), from Debian's
`prometheus` and `prometheus-alertmanager` packages, with the rules and routes of deploy/.

Their configurations are written into the state folder from deploy/prometheus/prometheus.yml and
deploy/alertmanager/alertmanager.yml, with this stack's ports, so several stacks can run side by side.
"""
from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml

from deploy.launchers.process import ManagedProcess, wait_until
from shared.settings import REPO_ROOT, Settings

DEPLOY = REPO_ROOT / "deploy"


def _binary(*names: str) -> str:
    for name in names:
        if found := shutil.which(name):
            return found
    raise RuntimeError(f"{names[0]} is missing: apt-get install {names[0]}")


class _Launcher(ABC):
    name: str
    port_setting: str

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = settings.state_dir / self.name
        self.process = ManagedProcess(self.name, settings.state_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{getattr(self.settings, self.port_setting)}"

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(self.ready, timeout=timeout, what=self.name)

    def stop(self) -> None:
        self.process.stop(timeout=20)

    def start(self, echo=print) -> None:
        if self.process.pid() is not None:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        argv = self._argv()
        echo(f"starting {self.name}")
        self.process.start(argv)

    @abstractmethod
    def _argv(self) -> list[str]:
        """The command line, its configuration written into the state folder first."""


class PrometheusLauncher(_Launcher):
    name, port_setting = "prometheus", "prometheus_port"

    def _config(self) -> Path:
        config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
        every = f"{self.settings.monitoring_interval_seconds:g}s"
        config["global"] = {"scrape_interval": every, "evaluation_interval": every}
        config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]
        config["alerting"]["alertmanagers"] = [
            {"static_configs": [{"targets": [f"127.0.0.1:{self.settings.alertmanager_port}"]}]}]
        targets: dict[str, list[str]] = {}
        for number in range(1, self.settings.instances + 1):  # every instance of every service
            for service, url in self.settings.for_instance(number).metrics_urls.items():
                targets.setdefault(service, []).append(urlsplit(url).netloc)
        path_of = {service: urlsplit(url).path for service, url in self.settings.metrics_urls.items()}
        config["scrape_configs"] = [{"job_name": f"points-{service}", "metrics_path": path_of[service],
                                     "static_configs": [{"targets": hosts}]} for service, hosts in targets.items()]
        path = self.home / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _argv(self) -> list[str]:
        return [_binary("prometheus"), f"--config.file={self._config()}", f"--storage.tsdb.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.settings.prometheus_port}"]


class AlertmanagerLauncher(_Launcher):
    name, port_setting = "alertmanager", "alertmanager_port"

    def _config(self) -> Path:
        config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
        secret = self.home / "alert-webhook-secret"
        secret.write_text(self.settings.alert_webhook_secret.get_secret_value())
        secret.chmod(0o600)
        for receiver in config["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = f"{self.settings.gateway_url}/v1/ops/alerts"
                hook["http_config"]["authorization"]["credentials_file"] = str(secret)
        # Alerts that act are sent at once; the others, grouped, within the scrape interval or so.
        config["route"]["group_wait"] = f"{self.settings.monitoring_interval_seconds:g}s"
        path = self.home / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _argv(self) -> list[str]:
        if self.settings.alert_webhook_secret is None:
            raise RuntimeError("POINTS_ALERT_WEBHOOK_SECRET is needed for Alertmanager to call the gateway")
        return [_binary("prometheus-alertmanager", "alertmanager"), f"--config.file={self._config()}",
                f"--storage.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.settings.alertmanager_port}", "--cluster.listen-address="]
