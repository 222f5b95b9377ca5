"""Schemathesis drives the gateway from its own OpenAPI document: no 5xx, no schema violations."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import new_user

pytestmark = pytest.mark.integration

CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance",
])


@pytest.fixture
async def flags_restored(gateway, token):
    yield
    await gateway.put("/v1/admin/flags", json={"points_system_enabled": True, "rollout_percent": 100},
                      headers=token("schemathesis-admin", "admin"))


@pytest.mark.parametrize("role", ["user", "admin"])
def test_the_gateway_honours_its_openapi_document(settings, token, role, flags_restored, tmp_path: Path):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a test dependency"
    headers = token(new_user() if role == "user" else "schemathesis-admin", role)
    result = subprocess.run(
        [st, "run", f"{settings.gateway_url}/openapi.json", "--checks", CHECKS,
         "--header", f"Authorization:{headers['Authorization']}", "--max-examples", "30", "--seed", "1",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
