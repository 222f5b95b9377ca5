"""Bootstrap of the gateway: settings in, the real adapters wired at start-up, the routers mounted."""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
from fastapi import FastAPI

from prometheus_client import Counter

from services.ingest import claims, idempotency, merchants, problems
from services.ingest.attestation import store as attestation_store
from services.ingest.auth import TokenVerifier
from services.ingest.fast_path import SubmitEventFastPath
from services.ingest.flags import FlagCache
from services.ingest.limits import BodySizeLimit
from services.ingest.metrics import RequestMetrics
from services.ingest.ports import Ports
from services.ingest.publisher import KafkaPublisher
from services.ingest.replies import ReplyWaiter
from services.ingest.routers import admin, alerts, attestation, console, coupons, events, health, me, review, stats
from shared import topics
from shared.coupon_codes import coupon_keys_from
from shared.db import alone, create_pool
from shared.ops_http import start_ops_server
from shared.events import utcnow
from shared.settings import Settings, get_settings
from shared.signing import keyring_from, signer_from


log = logging.getLogger("points.ingest")
NONCES_EXPIRED = Counter("ingest_nonces_expired_total", "Expired nonce claims removed by the cleanup job")


async def clean_expired_claims(pool: asyncpg.Pool, every: float) -> None:
    """Nonces, idempotency keys, attestation challenges and merchants' failed attempts are kept for as long
    as they mean something, then removed; with several gateways, one of them each round."""
    while True:
        try:
            async with alone(pool, "points.ingest.clean-expired-claims") as mine:
                if mine:
                    now = utcnow()
                    NONCES_EXPIRED.inc(await claims.delete_expired(pool, now))
                    await idempotency.delete_expired(pool, now)
                    await attestation_store.delete_expired_challenges(pool, now)
                    await merchants.delete_old_failures(pool, now)
        except Exception:
            log.exception("claim cleanup failed; will try again")
        await asyncio.sleep(every)


STUCK_REPUBLISHED = Counter("ingest_stuck_events_republished_total",
                            "Acknowledged events offered to the validator again after staying undecided")


async def revalidate_stuck_events(pool: asyncpg.Pool, publisher: KafkaPublisher, after: float) -> None:
    """The guide's "events stuck in pending" fix, automated: publish such events again.

    A safety net: the validator commits its decisions with its input offsets in one transaction, so
    nothing it read stays undecided. An event pending this long was lost upstream of it (a submission
    dead-lettered and not replayed, a topic restored from an older backup); offering it again is
    harmless, since the validator decides an event id once. With several gateways, one of them
    offers each round's events, so none is offered once per gateway.
    """
    while True:
        await asyncio.sleep(after / 2)
        try:
            async with alone(pool, "points.ingest.revalidate-stuck-events") as mine:
                for event in await claims.stuck_submissions(pool, utcnow() - timedelta(seconds=after)) if mine else ():
                    await publisher.publish(topics.SUBMITTED, event, key=event.user_id)
                    STUCK_REPUBLISHED.inc()
        except Exception:
            log.exception("revalidating stuck events failed; will try again")


# FastAPI asks OpenTelemetry on every request whether anyone configured it (an environment lookup
# per request); metrics here are Prometheus's, so it is switched off where FastAPI has it.
_WITHOUT_OPENTELEMETRY = {"telemetry": {"tracing": False, "metrics": False, "logs": False}} \
    if "telemetry" in inspect.signature(FastAPI).parameters else {}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # No reset query on release (a round trip per request): the gateway sets nothing on a session
        # beyond a transaction (SET LOCAL, transaction-level advisory locks).
        app.state.pool = await create_pool(settings.service_dsn("ingest"), min_size=1, max_size=10,
                                           reset=False)
        app.state.marks = claims.PublishedMarks(app.state.pool)
        app.state.marks.start()
        app.state.publisher = KafkaPublisher(settings.kafka_bootstrap_servers, signer_from(settings),
                                             settings.publish_timeout_seconds)
        await app.state.publisher.start()
        app.state.replies = ReplyWaiter(settings.kafka_bootstrap_servers, keyring_from(settings),
                                         timeout=settings.publish_timeout_seconds)
        await app.state.replies.start()
        app.state.flags = FlagCache(app.state.pool, settings.flags_refresh_seconds)
        await app.state.flags.refresh()
        app.state.ports = Ports(
            pool=app.state.pool, publisher=app.state.publisher, marks=app.state.marks,
            claims=claims.claims_from(app.state.pool, settings),
            replies=app.state.replies, settings=settings, keys=app.state.coupon_keys)
        ops = None if settings.exposes_ops_publicly else await start_ops_server(
            settings.ops_host, settings.gateway_ops_port, ready=lambda: app.state.publisher.started)
        background = [asyncio.create_task(clean_expired_claims(app.state.pool, settings.nonce_cleanup_seconds)),
                      asyncio.create_task(app.state.flags.run()),
                      asyncio.create_task(revalidate_stuck_events(app.state.pool, app.state.publisher,
                                                                  settings.stuck_pending_seconds))]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if ops is not None:
                await ops.cleanup()
            await app.state.replies.stop()
            await app.state.publisher.stop()
            await app.state.marks.stop()
            await app.state.pool.close()

    public = settings.exposes_ops_publicly
    app = FastAPI(
        title="Points ledger gateway",
        version="1.0.0",
        description="Server-authoritative points ledger and coupon redemption: the public HTTP API.",
        lifespan=lifespan,
        docs_url="/docs" if public else None,
        redoc_url="/redoc" if public else None,
        openapi_url="/openapi.json" if public else None,
        **_WITHOUT_OPENTELEMETRY,
    )
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    app.state.coupon_keys = coupon_keys_from(settings)
    app.add_middleware(SubmitEventFastPath)  # innermost: inside the body-size limit and the metrics
    app.add_middleware(BodySizeLimit)
    app.add_middleware(RequestMetrics)  # added last, so it is outermost and also counts the 413s
    problems.install(app)
    for router in (events.router, me.router, coupons.router, attestation.router, admin.router, review.router,
                   stats.router, health.router, console.router, alerts.router):
        app.include_router(router)
    if public:
        app.include_router(health.metrics_router)
    return app
