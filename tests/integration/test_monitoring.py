"""What SREs look at: the guide's alerts as Prometheus rules, its dashboards for Grafana, and the metrics
both read, checked against promtool and against what the running services really export."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import coupon_template, decided_event, eventually, fund, habit_event, held_event, new_user

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
OUR_METRIC = re.compile(r"\b((?:ingest|validator|projector|redeemer|points)_[a-z0-9_]+)\b(\{[^}]*\})?")
LABEL = re.compile(r'([a-z_]+)\s*(?:=|!=|=~|!~)\s*"')


def promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: apt-get install prometheus (.ci/run does)"
    done = subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def panel_targets() -> list[dict]:
    return [target for board in DASHBOARDS for panel in json.loads(board.read_text())["panels"]
            for target in panel["targets"]]


def dashboard_expressions() -> list[str]:
    return [t["expr"] for t in panel_targets() if "expr" in t]


def test_prometheus_accepts_both_configs_and_the_alerts_fire_at_the_guides_thresholds():
    promtool("check", "config", "prometheus.yml")
    promtool("check", "config", "prometheus-compose.yml")
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")


def amtool(*args: str, cwd) -> str:
    tool = shutil.which("amtool")
    assert tool, "amtool is missing: apt-get install prometheus-alertmanager (.ci/run does)"
    done = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("config", ["alertmanager.yml", "alertmanager-compose.yml"])
def test_alertmanager_accepts_its_config_and_sends_every_rules_action_to_the_gateway(tmp_path, config):
    shutil.copy(DEPLOY / "alertmanager" / config, tmp_path / config)
    (tmp_path / "alert-webhook-secret").write_text("x" * 40)
    assert "SUCCESS" in amtool("check-config", config, cwd=tmp_path)
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    actions = {rule["labels"]["action"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    assert any("auto_rollback" in a for a in actions) and any("disable_redemptions" in a for a in actions)
    for action in actions:
        routed = amtool("config", "routes", "test", f"--config.file={config}", f"action={action}",
                        "alertname=Test", cwd=tmp_path)
        assert routed.strip() == "points-gateway", (action, routed)
    url = yaml.safe_load((tmp_path / config).read_text())["receivers"][0]["webhook_configs"][0]["url"]
    assert url.endswith("/v1/ops/alerts")


def test_the_three_dashboards_of_the_guide_are_there_and_their_queries_parse(tmp_path):
    titles = {json.loads(board.read_text())["title"] for board in DASHBOARDS}
    assert titles == {"Points System Health", "Fraud Detection", "Coupon Redemptions"}
    rules = {"groups": [{"name": "dashboard-queries", "rules": [
        {"record": f"dashboard:query_{i}:check", "expr": expr} for i, expr in enumerate(dashboard_expressions())]}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    promtool("check", "rules", str(tmp_path / "queries.yml"))


async def test_every_sql_panel_shows_what_just_happened(gateway, token, db):
    """After a rapid-fire rejection, a redemption and a review, each SQL panel has rows to draw."""
    await exercise(gateway, token)
    admin = token("sre@example.com", "admin")
    headers = token(new_user())
    held = await held_event(gateway, headers)
    verdict = await gateway.post(f"/v1/admin/events/{held}/decision", json={"decision": "approve"}, headers=admin)
    assert verdict.status_code == 200

    async def approved():
        return (await decided_event(gateway, headers, held))["validation_status"] == "validated"

    await eventually(approved, timeout=30)
    queries = [t["rawSql"] for t in panel_targets() if "rawSql" in t]
    assert len(queries) >= 4

    async def every_panel_has_rows():
        return all([await db.fetch(query) for query in queries])

    await eventually(every_panel_has_rows, timeout=30, interval=0.5)


async def exercise(gateway, token) -> None:
    """Touch every path the panels and alerts count, so each labelled series exists at least once."""
    admin = token("sre@example.com", "admin")
    user = new_user()
    headers = token(user)
    at = datetime.now(timezone.utc)
    first = await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)
    rapid = await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)  # a fraud insight
    stale = await gateway.post("/v1/events", json=habit_event(at=at - timedelta(days=3)), headers=headers)
    assert stale.status_code == 422
    for response in (first, rapid):
        await decided_event(gateway, headers, response.json()["event_id"])
    template_id = await coupon_template(gateway, admin, 50, "Metrics")
    await fund(gateway, admin, headers, user, 50)
    spent = [await gateway.post("/v1/redemptions", json={"template_id": template_id},
                                headers={**headers, "Idempotency-Key": uuid.uuid4().hex}) for _ in range(2)]
    assert [r.status_code for r in spent] == [201, 409]  # one redeemed, one refused: both series exist


def samples_of(url: str) -> list:
    return [sample for family in text_string_to_metric_families(httpx.get(url, timeout=5).text)
            for sample in family.samples]


def scrape(settings) -> dict[str, list[dict]]:
    """Every sample the four services export: name -> the label sets seen."""
    samples: dict[str, list[dict]] = {}
    for url in settings.metrics_urls.values():
        for sample in samples_of(url):
            samples.setdefault(sample.name, []).append(sample.labels)
    return samples


async def test_every_metric_the_alerts_and_dashboards_read_is_exported_with_the_labels_they_use(
        stack, gateway, token):
    await exercise(gateway, token)
    missing: list[str] = []

    async def exported():
        samples = scrape(stack.settings)
        missing[:] = [f"{name}{selector}" for expr in [*alert_expressions(), *dashboard_expressions()]
                      for name, selector in OUR_METRIC.findall(expr)
                      if not any(set(LABEL.findall(selector)) <= set(seen) for seen in samples.get(name, []))]
        return not missing

    try:
        await eventually(exported, timeout=30, interval=1)
    except AssertionError:
        pytest.fail(f"read by an alert or a panel but not exported: {sorted(set(missing))}")


async def test_the_projector_reports_the_guides_read_model_checks_as_gauges(stack, gateway, token, db):
    headers = token(new_user())
    await held_event(gateway, headers)

    def gauges() -> dict[str, float]:
        return {s.name: s.value for s in samples_of(stack.settings.metrics_urls["projector"])}

    async def agree():
        held = await db.fetchval("SELECT count(*) FROM points_events WHERE validation_status = 'pending_review'")
        now = gauges()
        return (now.get("points_review_queue_depth") == held >= 1 and now["points_cache_discrepancy_users"] == 0
                and now["points_duplicate_coupon_hashes"] == 0 and now["points_unhashed_coupons"] == 0
                and now["points_health_checked_timestamp_seconds"] > 0)

    await eventually(agree, timeout=30, interval=0.5)


async def test_gateway_requests_are_counted_by_route_template_not_by_path(stack, gateway, token):
    headers = token(new_user())
    missing = uuid.uuid4()
    assert (await gateway.get(f"/v1/events/{missing}", headers=headers)).status_code == 404
    routes = {labels["route"] for labels in scrape(stack.settings)["ingest_http_requests_total"]}
    assert "/v1/events/{event_id}" in routes
    assert not any(str(missing) in route for route in routes)
    problems = scrape(stack.settings)["ingest_problems_total"]
    assert {"type": "not-found", "status": "404"} in problems
