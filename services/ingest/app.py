"""Bootstrap of the gateway: wires the real adapters unless a test passes its own."""
from __future__ import annotations

from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

from services.ingest import problems
from services.ingest.auth import TokenVerifier
from services.ingest.limits import BodySizeLimit
from services.ingest.publisher import KafkaPublisher
from services.ingest.routers import events, health, me
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.pool = await asyncpg.create_pool(settings.dsn, min_size=1, max_size=10)
        app.state.publisher = KafkaPublisher(settings.kafka_bootstrap_servers)
        await app.state.publisher.start()
        try:
            yield
        finally:
            await app.state.publisher.stop()
            await app.state.pool.close()

    app = FastAPI(
        title="Points ledger gateway",
        version="1.0.0",
        description="Server-authoritative points ledger and coupon redemption: the public HTTP API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    app.add_middleware(BodySizeLimit)
    problems.install(app)
    for router in (events.router, me.router, health.router):
        app.include_router(router)
    return app
