"""Alerts that act: Alertmanager's webhook. The rules' `action` label says what the guide would have
an operator do; the actions a machine may take alone, it takes here, recorded like an admin's with
the alert as the one who acted, and undone by an admin (PUT /v1/admin/flags, or the console)."""
from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Header
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from services.ingest import flags as flag_store
from services.ingest.deps import FlagsDep, Pool, SettingsDep
from services.ingest.problems import COMMON_PROBLEMS, Problem

router = APIRouter(prefix="/v1/ops", tags=["operations"], responses=COMMON_PROBLEMS)
log = logging.getLogger("points.ingest")
RECEIVED = Counter("ingest_alerts_received_total", "Alert notifications received from Alertmanager",
                   ["alertname", "status", "did"])

# What an action label may make the system do on its own; any other action only notifies.
KILL_SWITCH, STOP_REDEMPTIONS = "auto_rollback", "disable_redemptions"


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str
    labels: dict[str, str] = Field(default_factory=dict)
    fingerprint: str = ""


class Notification(BaseModel):
    """Alertmanager's webhook body (version 4); only what is acted on is read."""

    model_config = ConfigDict(extra="allow")

    alerts: list[Alert] = Field(default_factory=list, max_length=1000)


class Action(BaseModel):
    alertname: str
    fingerprint: str
    did: str = Field(description="kill-switch-off, redemptions-off, already-off, notified or resolved")


class Actions(BaseModel):
    actions: list[Action]


def _actions_of(alert: Alert) -> set[str]:
    return set(alert.labels.get("action", "").split("+")) - {""}


@router.post("/alerts", response_model=Actions, include_in_schema=False)
async def alerts(body: Notification, pool: Pool, cache: FlagsDep, settings: SettingsDep,
                 authorization: str | None = Header(None)) -> Actions:
    """Alertmanager's webhook, authenticated with its own secret (POINTS_ALERT_WEBHOOK_SECRET)."""
    secret = settings.alert_webhook_secret
    if secret is None:
        raise Problem(404, "not-found", "No alert webhook is configured here.")
    expected = f"Bearer {secret.get_secret_value()}".encode()
    if not hmac.compare_digest((authorization or "").encode(), expected):
        raise Problem(401, "unauthorized", "The alert webhook's secret is required.",
                      headers={"WWW-Authenticate": "Bearer"})
    done = []
    for alert in body.alerts:
        name = alert.labels.get("alertname", "unnamed")
        acts = _actions_of(alert)
        who = f"alert:{name}:{alert.fingerprint}"[:255]
        if alert.status != "firing":
            did = "resolved"  # what an alert switched off stays off until an admin decides
        elif KILL_SWITCH in acts:
            did = await _switch(pool, cache, who, "kill-switch-off", points_system_enabled=False)
        elif STOP_REDEMPTIONS in acts:
            did = await _switch(pool, cache, who, "redemptions-off", redemptions_enabled=False)
        else:
            did = "notified"
        RECEIVED.labels(name, alert.status, did).inc()
        log.warning("points.alert.received", extra={"alertname": name, "status": alert.status, "did": did,
                                                    "action": alert.labels.get("action"),
                                                    "fingerprint": alert.fingerprint})
        done.append(Action(alertname=name, fingerprint=alert.fingerprint, did=did))
    return Actions(actions=done)


async def _switch(pool, cache, who: str, did: str, **off: bool) -> str:
    """Switch a flag off once: Alertmanager repeats a firing alert, and a repeat changes nothing."""
    current = await flag_store.load(pool)
    if all(getattr(current, name) == value for name, value in off.items()):
        return "already-off"
    cache.current = await flag_store.save(
        pool, admin=who, enabled=off.get("points_system_enabled"), redemptions_enabled=off.get("redemptions_enabled"))
    log.error("points.alert.acted", extra={"by": who, "did": did})
    return did
