"""The one settings class every process reads its configuration from."""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


# Known-public values: fine on a laptop, refused anywhere else.
DEV_JWT_SECRET = "dev-only-points-jwt-secret-change-me-0123456789"
DEV_COUPON_SECRET = "dev-only-points-coupon-secret-change-me-0123456789"
DEV_COUPON_CODE_KEY = "dev-only-points-coupon-code-key-change-me-0123456789"
DEV_CLIENT_IP_KEY = "dev-only-points-client-ip-key-change-me-0123456789"
# What `points up --monitoring` gives Alertmanager and the gateway on a dev stack with none set.
DEV_ALERT_WEBHOOK_SECRET = "dev-only-points-alert-webhook-secret-change-me-0123"

REPO_ROOT = Path(__file__).resolve().parent.parent
# The PostgreSQL role each service logs in as (shared/migrations/0011.service-roles.sql).
SERVICE_ROLES = {"projector": "points_projector", "ingest": "points_gateway"}
# HS256 and HMAC keys shorter than their hash's output can be searched offline.
MIN_SECRET_LENGTH = 32


def production_problems(settings: "Settings") -> list[str]:
    """Why these settings may not run in production: every reason, most serious first."""
    import base64
    import binascii
    import json

    from shared.signing import DEV_SIGNING_SEED

    problems = []
    if settings.jwks_url is not None:
        if not settings.jwt_issuer:
            problems.append("POINTS_JWT_ISSUER must be set with POINTS_JWKS_URL: otherwise a token the identity "
                            "provider minted for any other application would be accepted here")
        if not settings.jwks_url.startswith("https://"):
            problems.append("POINTS_JWKS_URL must be an https:// URL: over plain HTTP anyone on the path can "
                            "substitute their own keys and sign admin tokens")
    else:
        jwt_secret = settings.jwt_secret.get_secret_value()
        if jwt_secret == DEV_JWT_SECRET:
            problems.append("POINTS_JWT_SECRET (or POINTS_JWKS_URL) must be set: the dev secret is public, "
                            "so anyone could sign an admin token")
        elif len(jwt_secret) < MIN_SECRET_LENGTH:
            problems.append(f"POINTS_JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters: a short HS256 "
                            "key can be found from one token offline")
    coupon_secret = settings.coupon_secret.get_secret_value()
    code_key = settings.coupon_code_key.get_secret_value()
    if coupon_secret == DEV_COUPON_SECRET or len(coupon_secret) < MIN_SECRET_LENGTH:
        problems.append(f"COUPON_SECRET must be set to at least {MIN_SECRET_LENGTH} characters: with the dev or a "
                        "short secret, coupon code hashes can be tested offline")
    if code_key == DEV_COUPON_CODE_KEY or len(code_key) < MIN_SECRET_LENGTH:
        problems.append(f"POINTS_COUPON_CODE_KEY must be set to at least {MIN_SECRET_LENGTH} characters: with the "
                        "dev key anyone can compute every coupon's code from its id")
    if code_key == coupon_secret:
        problems.append("COUPON_SECRET and POINTS_COUPON_CODE_KEY must differ: whoever holds the hashing secret "
                        "could then derive the codes themselves")
    webhook = settings.alert_webhook_secret
    if webhook is not None and (webhook.get_secret_value() == DEV_ALERT_WEBHOOK_SECRET
                                or len(webhook.get_secret_value()) < MIN_SECRET_LENGTH):
        problems.append(f"POINTS_ALERT_WEBHOOK_SECRET must be at least {MIN_SECRET_LENGTH} characters and not the "
                        "dev value: whoever knows it can switch the points system off")
    client_ip_key = settings.client_ip_key.get_secret_value()
    if settings.record_client_ip and (client_ip_key == DEV_CLIENT_IP_KEY or len(client_ip_key) < MIN_SECRET_LENGTH):
        problems.append(f"POINTS_CLIENT_IP_KEY must be set to at least {MIN_SECRET_LENGTH} characters when "
                        "POINTS_RECORD_CLIENT_IP is on: with the dev key an address's hash can be looked up from "
                        "every IPv4 address in minutes")
    if settings.coupon_previous_secrets is not None:
        try:
            previous = json.loads(settings.coupon_previous_secrets.get_secret_value())
            secrets = list(previous.values()) if isinstance(previous, dict) else None
        except ValueError:
            secrets = None
        if secrets is None:
            problems.append('COUPON_PREVIOUS_SECRETS must be a JSON object {"key id": "secret"}')
        elif any(s == DEV_COUPON_SECRET or not isinstance(s, str) or len(s) < MIN_SECRET_LENGTH for s in secrets):
            problems.append("COUPON_PREVIOUS_SECRETS may not hold the dev coupon secret or one shorter than "
                            f"{MIN_SECRET_LENGTH} characters: codes hashed with it could be tested offline")
    if settings.signing_key is None:
        problems.append("POINTS_SIGNING_KEY must be set: records signed with the public dev key prove nothing")
    else:
        try:
            seed = base64.b64decode(settings.signing_key.get_secret_value(), validate=True)
        except (binascii.Error, ValueError):
            seed = b""
        if len(seed) != 32:
            problems.append("POINTS_SIGNING_KEY must be the base64 of a 32-byte Ed25519 seed")
        elif seed == DEV_SIGNING_SEED:
            problems.append("POINTS_SIGNING_KEY is the published dev key: anyone could sign records as us")
    if settings.app_attest_verify_at is not None:
        problems.append("APP_ATTEST_VERIFY_AT is for replaying recorded attestations in tests only")
    return problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # Production unless told otherwise: the dev secrets below are public, so only a process that is
    # told it runs a dev stack (`points` sets dev, the test fixtures test) may use them.
    env: Literal["dev", "test", "prod"] = Field("prod", alias="POINTS_ENV")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    # False when the broker is someone else's (a container, a cluster): `up` then only waits for it.
    manage_kafka: bool = Field(True, alias="POINTS_MANAGE_KAFKA")
    # The owner's login: migrations, `points` tools. The services log in as their own roles (below).
    database_url: str | None = Field(None, alias="DATABASE_URL")
    # Each service's own login (migration 0011 makes the roles and their grants). Unset with the
    # embedded server: the role on it. Unset with DATABASE_URL: refused in production, the owner's
    # login otherwise (a container someone else runs for the tests).
    projector_database_url: SecretStr | None = Field(None, alias="POINTS_PROJECTOR_DATABASE_URL")
    gateway_database_url: SecretStr | None = Field(None, alias="POINTS_GATEWAY_DATABASE_URL")
    # The read-only role's password (dashboards), set by `points init` when given.
    reader_db_password: SecretStr | None = Field(None, alias="POINTS_READER_DB_PASSWORD")
    jwt_secret: SecretStr = Field(SecretStr(DEV_JWT_SECRET), alias="POINTS_JWT_SECRET")
    jwks_url: str | None = Field(None, alias="POINTS_JWKS_URL")
    # Tokens must name this audience (`aud`), and this issuer (`iss`) when one is set: a token minted
    # for another service by the same identity provider is not ours to accept.
    jwt_audience: str = Field("points-ledger", alias="POINTS_JWT_AUDIENCE", min_length=1)
    jwt_issuer: str | None = Field(None, alias="POINTS_JWT_ISSUER")
    # A stolen token is good for at most this long, whatever `exp` it claims.
    jwt_max_lifetime_seconds: int = Field(24 * 3600, alias="POINTS_JWT_MAX_LIFETIME_SECONDS", gt=0)
    coupon_secret: SecretStr = Field(SecretStr(DEV_COUPON_SECRET), alias="COUPON_SECRET")
    # Base64 of a raw 32-byte Ed25519 private key; the dev key is refused outside dev.
    signing_key: SecretStr | None = Field(None, alias="POINTS_SIGNING_KEY")
    signing_key_id: str = Field("dev-1", alias="POINTS_SIGNING_KEY_ID")
    # Extra trusted public keys (a JWK set), for keys being rotated out.
    signing_previous_keys: str | None = Field(None, alias="POINTS_SIGNING_PREVIOUS_KEYS")
    # Alertmanager's webhook (POST /v1/ops/alerts) answers only with this bearer secret; unset, it is off.
    alert_webhook_secret: SecretStr | None = Field(None, alias="POINTS_ALERT_WEBHOOK_SECRET")
    # `points up --monitoring`: Prometheus and Alertmanager beside the stack, scraping every so often.
    monitoring: bool = Field(False, alias="POINTS_MONITORING")
    prometheus_port: int = Field(9090, alias="POINTS_PROMETHEUS_PORT")
    alertmanager_port: int = Field(9093, alias="POINTS_ALERTMANAGER_PORT")
    monitoring_interval_seconds: float = Field(15.0, alias="POINTS_MONITORING_INTERVAL_SECONDS", gt=0)
    # Device attestation; each platform is verified only when configured (see services/ingest/attestation).
    attestation_required: bool = Field(False, alias="POINTS_ATTESTATION_REQUIRED")
    app_attest_app_id: str | None = Field(None, alias="APP_ATTEST_APP_ID", description="TEAMID.bundle.id")
    app_attest_environment: Literal["development", "production"] = Field("production", alias="APP_ATTEST_ENVIRONMENT")
    # Only for replaying recorded attestations in tests: refused in prod.
    app_attest_verify_at: datetime | None = Field(None, alias="APP_ATTEST_VERIFY_AT")
    play_integrity_package: str | None = Field(None, alias="PLAY_INTEGRITY_PACKAGE_NAME")
    play_integrity_decryption_key: SecretStr | None = Field(None, alias="PLAY_INTEGRITY_DECRYPTION_KEY")
    play_integrity_verification_key: str | None = Field(None, alias="PLAY_INTEGRITY_VERIFICATION_KEY")
    rate_limit_per_hour: int = Field(100, alias="POINTS_RATE_LIMIT_PER_HOUR", ge=1)
    coupon_secret_id: str = Field("k1", alias="COUPON_SECRET_ID")
    # JSON object {"key id": "secret"} of secrets being rotated out; codes hashed with them still verify.
    coupon_previous_secrets: SecretStr | None = Field(None, alias="COUPON_PREVIOUS_SECRETS")
    # Derives each coupon's code from its id (see shared/coupon_codes.py); held only by the services.
    coupon_code_key: SecretStr = Field(SecretStr(DEV_COUPON_CODE_KEY), alias="POINTS_COUPON_CODE_KEY")
    # An acknowledged event still undecided after this long is offered to the validator again.
    stuck_pending_seconds: float = Field(60.0, alias="POINTS_STUCK_PENDING_SECONDS", gt=0)
    publish_timeout_seconds: float = Field(5.0, alias="POINTS_PUBLISH_TIMEOUT_SECONDS", gt=0)
    redemption_timeout_seconds: float = Field(10.0, alias="POINTS_REDEMPTION_TIMEOUT_SECONDS", gt=0)
    idempotency_ttl_hours: float = Field(48.0, alias="POINTS_IDEMPOTENCY_TTL_HOURS", ge=24)
    merchant_failed_attempts_per_hour: int = Field(20, alias="POINTS_MERCHANT_FAILED_ATTEMPTS_PER_HOUR", ge=1)

    nonce_ttl_hours: float = Field(25.0, alias="POINTS_NONCE_TTL_HOURS", ge=24.1)
    nonce_cleanup_seconds: float = Field(60.0, alias="POINTS_NONCE_CLEANUP_SECONDS", gt=0)

    # How often the projector runs the guide's read-model checks behind the alerting gauges.
    health_check_seconds: float = Field(30.0, alias="POINTS_HEALTH_CHECK_SECONDS", gt=0)
    # How often the guide's balance check runs over every user (it sums the whole ledger); in between
    # it runs every POINTS_HEALTH_CHECK_SECONDS over the users the projector wrote since.
    balance_check_everyone_seconds: float = Field(900.0, alias="POINTS_BALANCE_CHECK_EVERYONE_SECONDS", gt=0)
    flags_refresh_seconds: float = Field(2.0, alias="POINTS_FLAGS_REFRESH_SECONDS", gt=0)

    # The local cluster `points up` runs: this many brokers, and this many instances of every
    # service. Unset: what the last `points up --brokers/--instances` in the state folder recorded.
    brokers: int = Field(1, alias="POINTS_BROKERS", ge=1, le=9)
    instances: int = Field(1, alias="POINTS_INSTANCES", ge=1, le=9)

    gateway_host: str = Field("127.0.0.1", alias="POINTS_GATEWAY_HOST")
    # Where the other services answer /healthz, /readyz and /metrics (0.0.0.0 in containers, for Prometheus).
    ops_host: str = Field("127.0.0.1", alias="POINTS_OPS_HOST")
    gateway_port: int = Field(8000, alias="POINTS_GATEWAY_PORT")
    # /docs, /openapi.json and /metrics on the user-facing port: handy on a laptop, a map for an
    # attacker in production. Unset: on outside production. When off, /metrics (with /healthz and
    # /readyz) is served on the gateway's ops port instead, for Prometheus on the private network.
    gateway_public_ops: bool | None = Field(None, alias="POINTS_GATEWAY_PUBLIC_OPS")
    gateway_ops_port: int = Field(8004, alias="POINTS_GATEWAY_OPS_PORT")
    validator_port: int = Field(8001, alias="POINTS_VALIDATOR_PORT")
    projector_port: int = Field(8002, alias="POINTS_PROJECTOR_PORT")
    redeemer_port: int = Field(8003, alias="POINTS_REDEEMER_PORT")
    postgres_port: int = Field(55432, alias="POINTS_POSTGRES_PORT")
    topic_partitions: int = Field(6, alias="POINTS_TOPIC_PARTITIONS", ge=1)
    # Unset: min(brokers, 3); production runs 3 brokers with 3 here and 2 in-sync replicas.
    topic_replication_factor: int | None = Field(None, alias="POINTS_TOPIC_REPLICATION_FACTOR", ge=1)
    # Unset: one less than the replication factor (at least 1), so one broker may be lost.
    topic_min_insync_replicas: int | None = Field(None, alias="POINTS_TOPIC_MIN_INSYNC_REPLICAS", ge=1)
    state_dir: Path = Field(REPO_ROOT / ".state", alias="POINTS_STATE_DIR")

    # The guide's thresholds, when a deployment sets them; unset, the rule set's own defaults apply
    # (services/validator/signals.RuleSet: validated from 60, review from 30, 1 s between events).
    validated_min_score: int | None = Field(None, alias="POINTS_VALIDATED_MIN_SCORE")
    review_min_score: int | None = Field(None, alias="POINTS_REVIEW_MIN_SCORE")
    min_event_spacing_seconds: float | None = Field(None, alias="POINTS_MIN_EVENT_SPACING_SECONDS")
    # JSON object overriding any weight or threshold of services/validator/signals.RuleSet.
    trust_rules: str | None = Field(None, alias="POINTS_TRUST_RULES")
    # Off by default: behind a proxy every client would share the proxy's address.
    record_client_ip: bool = Field(False, alias="POINTS_RECORD_CLIENT_IP")
    # Keys the hash of a client's address: its own key, so no other secret's holder can reverse it.
    client_ip_key: SecretStr = Field(SecretStr(DEV_CLIENT_IP_KEY), alias="POINTS_CLIENT_IP_KEY")

    @model_validator(mode="after")
    def _refuse_unsafe_secrets_outside_dev(self) -> "Settings":
        """Outside a dev or test stack every secret must be real; each refusal names the setting and why."""
        if self.env != "prod":
            return self
        for problem in production_problems(self):
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _cluster_shape(self) -> "Settings":
        """The recorded shape of the local cluster, unless told otherwise; every broker to bootstrap from."""
        recorded = recorded_shape(self.state_dir)
        for name in ("brokers", "instances"):
            if name not in self.model_fields_set and name in recorded:
                setattr(self, name, recorded[name])
        if self.manage_kafka and self.brokers > 1 and "," not in self.kafka_bootstrap_servers:
            self.kafka_bootstrap_servers = ",".join(f"{host}:{port}" for host, port in self.broker_addresses)
        return self

    @property
    def broker_addresses(self) -> list[tuple[str, int]]:
        """Where the launcher's brokers listen: from the first bootstrap address on, two ports each
        (clients, then the controller quorum)."""
        host, _, port = self.kafka_bootstrap_servers.split(",")[0].rpartition(":")
        return [(host or "127.0.0.1", int(port) + 2 * i) for i in range(self.brokers)]

    @property
    def replication_factor(self) -> int:
        return self.topic_replication_factor or min(self.brokers, 3)

    @property
    def min_insync_replicas(self) -> int:
        return self.topic_min_insync_replicas or max(1, self.replication_factor - 1)

    def for_instance(self, number: int) -> "Settings":
        """Instance `number` (1..instances) of every service: its own ports, ten above the last's."""
        shift = 10 * (number - 1)
        return self.model_copy(update={name: getattr(self, name) + shift for name in INSTANCE_PORTS})

    def as_environment(self) -> dict[str, str]:
        """What was set, as the environment a child process reads the same settings from."""
        environment = {}
        for name in self.model_fields_set | {"brokers", "instances", "kafka_bootstrap_servers"}:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = str(value).lower()
            elif isinstance(value, datetime):
                value = value.isoformat()
            environment[type(self).model_fields[name].alias or name.upper()] = str(value)
        return environment

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def dsn(self) -> str:
        """Where PostgreSQL is: DATABASE_URL, or the embedded server the launcher runs."""
        return self.database_url or f"postgresql://postgres@127.0.0.1:{self.postgres_port}/points"

    @property
    def service_urls(self) -> dict[str, SecretStr | None]:
        """Each service's own PostgreSQL login as configured (None: derived, see service_dsn)."""
        return {"projector": self.projector_database_url, "ingest": self.gateway_database_url}

    def service_dsn(self, service: Literal["projector", "ingest"]) -> str:
        """Where a service logs in to PostgreSQL: as its own role, with only its grants."""
        explicit = self.service_urls[service]
        if explicit is not None:
            return explicit.get_secret_value()
        if self.uses_embedded_postgres:
            return f"postgresql://{SERVICE_ROLES[service]}@127.0.0.1:{self.postgres_port}/points"
        if self.env == "prod":
            name = "POINTS_PROJECTOR_DATABASE_URL" if service == "projector" else "POINTS_GATEWAY_DATABASE_URL"
            raise ValueError(f"{name} must be set: the {service} logs in as {SERVICE_ROLES[service]}, never as "
                             "the owner of DATABASE_URL, who could rewrite the read models")
        return self.dsn

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def exposes_ops_publicly(self) -> bool:
        return self.gateway_public_ops if self.gateway_public_ops is not None else self.env != "prod"

    @property
    def metrics_urls(self) -> dict[str, str]:
        return {
            "ingest": f"{self.gateway_url}/metrics" if self.exposes_ops_publicly
            else f"http://127.0.0.1:{self.gateway_ops_port}/metrics",
            "validator": f"http://127.0.0.1:{self.validator_port}/metrics",
            "projector": f"http://127.0.0.1:{self.projector_port}/metrics",
            "redeemer": f"http://127.0.0.1:{self.redeemer_port}/metrics",
        }

    @property
    def uses_dev_jwt_secret(self) -> bool:
        return self.jwt_secret.get_secret_value() == DEV_JWT_SECRET


INSTANCE_PORTS = ("gateway_port", "gateway_ops_port", "validator_port", "projector_port", "redeemer_port")
SHAPE_FILE = "cluster.json"


def recorded_shape(state_dir: Path) -> dict[str, int]:
    """{"brokers", "instances"} as `points up` last recorded them in the state folder, or {}."""
    import json

    try:
        shape = json.loads((state_dir / SHAPE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {k: int(v) for k, v in shape.items() if k in ("brokers", "instances") and 1 <= int(v) <= 9}


@lru_cache
def get_settings() -> Settings:
    return Settings()
