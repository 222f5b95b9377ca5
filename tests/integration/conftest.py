"""Fixtures the integration tests share."""
from __future__ import annotations

import pytest

from shared.db import create_pool


@pytest.fixture
async def schema(settings):
    """A fresh schema of this test's own, so the live read models never see its rows."""
    from services.projector.rebuild import create_schema, drop_schema, new_schema_name

    name = new_schema_name()
    await create_schema(settings.dsn, name)
    pool = await create_pool(settings.dsn, schema=name, min_size=1, max_size=3)
    yield pool
    await pool.close()
    await drop_schema(settings.dsn, name)
