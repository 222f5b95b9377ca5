"""Applies the versioned SQL migrations in ./migrations with yoyo."""
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
