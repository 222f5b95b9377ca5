"""The one settings class every process reads its configuration from."""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from shared.coupon_codes import CouponKeys
    from shared.signing import Keyring, Signer

# Known-public values: fine on a laptop, refused anywhere else.
DEV_JWT_SECRET = "dev-only-points-jwt-secret-change-me-0123456789"
DEV_COUPON_SECRET = "dev-only-points-coupon-secret-change-me-0123456789"
DEV_COUPON_CODE_KEY = "dev-only-points-coupon-code-key-change-me-0123456789"

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    env: Literal["dev", "test", "prod"] = Field("dev", alias="POINTS_ENV")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    # False when the broker is someone else's (a container, a cluster): `up` then only waits for it.
    manage_kafka: bool = Field(True, alias="POINTS_MANAGE_KAFKA")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    jwt_secret: SecretStr = Field(SecretStr(DEV_JWT_SECRET), alias="POINTS_JWT_SECRET")
    jwks_url: str | None = Field(None, alias="POINTS_JWKS_URL")
    coupon_secret: SecretStr = Field(SecretStr(DEV_COUPON_SECRET), alias="COUPON_SECRET")
    # Base64 of a raw 32-byte Ed25519 private key; the dev key is refused outside dev.
    signing_key: SecretStr | None = Field(None, alias="POINTS_SIGNING_KEY")
    signing_key_id: str = Field("dev-1", alias="POINTS_SIGNING_KEY_ID")
    # Extra trusted public keys (a JWK set), for keys being rotated out.
    signing_previous_keys: str | None = Field(None, alias="POINTS_SIGNING_PREVIOUS_KEYS")
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
    flags_refresh_seconds: float = Field(2.0, alias="POINTS_FLAGS_REFRESH_SECONDS", gt=0)

    # Which instance of its service this process is (1..M): names its static group membership and
    # transactional ids, which must stay the same across restarts of the same instance.
    instance: str = Field("1", alias="POINTS_INSTANCE", pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    gateway_host: str = Field("127.0.0.1", alias="POINTS_GATEWAY_HOST")
    # Where the other services answer /healthz, /readyz and /metrics (0.0.0.0 in containers, for Prometheus).
    ops_host: str = Field("127.0.0.1", alias="POINTS_OPS_HOST")
    gateway_port: int = Field(8000, alias="POINTS_GATEWAY_PORT")
    validator_port: int = Field(8001, alias="POINTS_VALIDATOR_PORT")
    projector_port: int = Field(8002, alias="POINTS_PROJECTOR_PORT")
    redeemer_port: int = Field(8003, alias="POINTS_REDEEMER_PORT")
    postgres_port: int = Field(55432, alias="POINTS_POSTGRES_PORT")
    topic_partitions: int = Field(6, alias="POINTS_TOPIC_PARTITIONS", ge=1)
    # 1 for a one-broker laptop; production runs 3 brokers with 3 here and 2 in-sync replicas.
    topic_replication_factor: int = Field(1, alias="POINTS_TOPIC_REPLICATION_FACTOR", ge=1)
    # Unset: one less than the replication factor (at least 1), so one broker may be lost.
    topic_min_insync_replicas: int | None = Field(None, alias="POINTS_TOPIC_MIN_INSYNC_REPLICAS", ge=1)
    state_dir: Path = Field(REPO_ROOT / ".state", alias="POINTS_STATE_DIR")

    # The seed's defaults; see services/validator/rules.py for how they are used.
    validated_min_score: int = Field(60, alias="POINTS_VALIDATED_MIN_SCORE")
    review_min_score: int = Field(30, alias="POINTS_REVIEW_MIN_SCORE")
    min_event_spacing_seconds: float = Field(1.0, alias="POINTS_MIN_EVENT_SPACING_SECONDS")
    # JSON object overriding any weight or threshold of services/validator/signals.RuleSet.
    trust_rules: str | None = Field(None, alias="POINTS_TRUST_RULES")
    # Off by default: behind a proxy every client would share the proxy's address.
    record_client_ip: bool = Field(False, alias="POINTS_RECORD_CLIENT_IP")

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_dev(self) -> "Settings":
        if self.env == "prod":
            if self.jwks_url is None and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                raise ValueError("POINTS_JWT_SECRET (or POINTS_JWKS_URL) must be set outside dev")
            secret = self.coupon_secret.get_secret_value()
            if secret == DEV_COUPON_SECRET or len(secret) < 32:
                raise ValueError("COUPON_SECRET must be set to at least 32 characters outside dev")
            code_key = self.coupon_code_key.get_secret_value()
            if code_key == DEV_COUPON_CODE_KEY or len(code_key) < 32:
                raise ValueError("POINTS_COUPON_CODE_KEY must be set to at least 32 characters outside dev")
            if self.signing_key is None:
                raise ValueError("POINTS_SIGNING_KEY must be set outside dev")
            if self.app_attest_verify_at is not None:
                raise ValueError("APP_ATTEST_VERIFY_AT is for tests only")
        return self

    @property
    def min_insync_replicas(self) -> int:
        return self.topic_min_insync_replicas or max(1, self.topic_replication_factor - 1)

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def dsn(self) -> str:
        """Where PostgreSQL is: DATABASE_URL, or the embedded server the launcher runs."""
        return self.database_url or f"postgresql://postgres@127.0.0.1:{self.postgres_port}/points"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def metrics_urls(self) -> dict[str, str]:
        return {
            "ingest": f"{self.gateway_url}/metrics",
            "validator": f"http://127.0.0.1:{self.validator_port}/metrics",
            "projector": f"http://127.0.0.1:{self.projector_port}/metrics",
            "redeemer": f"http://127.0.0.1:{self.redeemer_port}/metrics",
        }

    def signer(self) -> "Signer":
        import base64

        from shared.signing import DEV_SIGNING_SEED, Signer

        seed = base64.b64decode(self.signing_key.get_secret_value()) if self.signing_key else DEV_SIGNING_SEED
        return Signer.from_seed(self.signing_key_id, seed)

    def coupon_keys(self) -> "CouponKeys":
        import json

        from shared.coupon_codes import CouponKeys

        previous = json.loads(self.coupon_previous_secrets.get_secret_value()) if self.coupon_previous_secrets else {}
        return CouponKeys(self.coupon_code_key.get_secret_value().encode(),
                          (self.coupon_secret_id, self.coupon_secret.get_secret_value().encode()),
                          {kid: secret.encode() for kid, secret in previous.items()})

    def keyring(self) -> "Keyring":
        from shared.signing import Keyring

        previous = Keyring.from_jwks(self.signing_previous_keys).keys if self.signing_previous_keys else {}
        return Keyring({**previous, self.signing_key_id: self.signer().public_bytes()})

    @property
    def uses_dev_jwt_secret(self) -> bool:
        return self.jwt_secret.get_secret_value() == DEV_JWT_SECRET


@lru_cache
def get_settings() -> Settings:
    return Settings()
