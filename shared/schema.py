"""The one database's schema: the versioned SQL migrations in ./migrations, applied with yoyo by
`points up` / `points init` (as the owner) and by the projector's rebuild into a schema of its own.

The services share one database, so its history is one ordered list, kept here rather than with
either service. Who owns what (writes it; the other only reads it, if at all):
- the projector: points_events, user_points_cache, coupons, fraud_insights, command_answers,
  projector_offsets (the read models, rebuilt from the log);
- the gateway (ingest): used_nonces, idempotency_keys, feature_flags and feature_flag_changes,
  coupon_templates, device_keys, attestation_challenges, merchant_failed_attempts;
- 0002 and 0011 (row-level security, the services' roles) span both.
"""
from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _yoyo_url(dsn: str) -> str:
    scheme, _, rest = dsn.partition("://")
    return f"postgresql+psycopg://{rest}" if scheme in ("postgres", "postgresql") else dsn


def apply_migrations(dsn: str, schema: str | None = None) -> int:
    """Bring the schema (the default one, or `schema`) up to date; returns how many migrations were applied."""
    url = _yoyo_url(dsn)
    if schema:
        url += ("&" if "?" in url else "?") + f"schema={schema}"
    backend = get_backend(url)
    migrations = read_migrations(str(MIGRATIONS))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return len(pending)
