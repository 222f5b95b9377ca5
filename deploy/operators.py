"""What the deployment guide's operator SQL does, done through the log instead: the same commands
the admin API runs (services/ingest), so the redeemer, the validator and the read models all learn
of it, each naming the operator and safe to run twice."""
from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from shared.coupon_codes import coupon_keys_from
from shared.signing import keyring_from, signer_from
from uuid import UUID

from services.ingest import templates
from services.ingest.claims import PublishedMarks, claims_from
from services.ingest.commands import coupons, review
from services.ingest.commands import points as point_commands
from services.ingest.commands.base import Reply
from services.ingest.ports import Ports
from services.ingest.publisher import KafkaPublisher
from services.ingest.replies import ReplyWaiter
from services.ingest.routers.admin import AwardRequest, ClawbackRequest
from shared.db import create_pool
from shared.events import utcnow
from shared.settings import Settings


@asynccontextmanager
async def gateway_ports(settings: Settings, *, answers: bool = False) -> AsyncIterator[Ports]:
    """The gateway's adapters, for one command: a pool, a publisher and, when a command needs the
    redeemer's answer, a reply reader."""
    pool = await create_pool(settings.dsn, min_size=1, max_size=2)
    publisher = KafkaPublisher(settings.kafka_bootstrap_servers, signer_from(settings), settings.publish_timeout_seconds)
    # Made only when needed: a reader that is never started would be left unclosed at exit.
    replies = ReplyWaiter(settings.kafka_bootstrap_servers, keyring_from(settings),
                         timeout=settings.publish_timeout_seconds) if answers else None
    try:
        await publisher.start()
        if replies is not None:
            await replies.start()
        # No command here submits an event, so nothing is ever claimed or marked published.
        yield Ports(pool=pool, publisher=publisher, claims=claims_from(pool, settings), marks=PublishedMarks(pool),
                    replies=replies, settings=settings, keys=coupon_keys_from(settings))
    finally:
        if replies is not None and replies.started:
            await replies.stop()
        await publisher.stop()
        await pool.close()


def command_key(*said: object) -> str:
    """The same command typed twice is one command: its Idempotency-Key follows from what it says."""
    return "cli-" + hashlib.sha256("\x00".join(map(str, said)).encode()).hexdigest()[:40]


async def award(settings: Settings, *, operator: str, user_id: str, points: int, reason: str,
                key: str | None = None) -> Reply:
    checked = AwardRequest(user_id=user_id, points=points, reason=reason)  # the API's own limits
    async with gateway_ports(settings) as ports:
        return await point_commands.award(ports, admin=operator, user_id=checked.user_id, points=checked.points,
                                          reason=checked.reason,
                                          key=key or command_key(operator, user_id, points, reason), now=utcnow())


async def claw_back(settings: Settings, *, operator: str, user_id: str, points: int | None,
                    event_ids: list[UUID] | None, reason: str, key: str | None = None) -> Reply:
    checked = ClawbackRequest(points=points, event_ids=event_ids, reason=reason)  # the API's own limits
    async with gateway_ports(settings, answers=True) as ports:
        return await point_commands.claw_back(
            ports, admin=operator, user_id=user_id, points=checked.points, event_ids=checked.event_ids,
            reason=checked.reason, now=utcnow(),
            key=key or command_key("clawback", operator, user_id, points, sorted(map(str, event_ids or [])), reason))


async def revoke(settings: Settings, *, operator: str, coupon_id: UUID, refund: bool) -> Reply:
    async with gateway_ports(settings, answers=True) as ports:
        return await coupons.revoke(ports, admin=operator, coupon_id=coupon_id, refund=refund, now=utcnow())


async def verdict(settings: Settings, *, operator: str, decision: str, note: str | None,
                  event_ids: list[UUID] | None, user_id: str | None) -> list[dict]:
    """One verdict on the named held events, or on every held event of one user: each event's outcome."""
    async with gateway_ports(settings) as ports:
        outcomes = await review.decide_many(ports, admin=operator, decision=decision, note=note, event_ids=event_ids,
                                            user_id=user_id, now=utcnow())
    return [{"event_id": str(o.event_id), "outcome": o.outcome, "validation_status": o.validation_status}
            for o in outcomes]


async def hold_pending(settings: Settings, *, operator: str, user_ids: list[str] | None = None) -> int:
    async with gateway_ports(settings) as ports:
        return await review.hold_pending(ports, admin=operator, user_ids=user_ids, now=utcnow())


async def set_template_active(settings: Settings, *, operator: str, template_id: UUID, active: bool) -> dict | None:
    pool = await create_pool(settings.dsn, min_size=1, max_size=1)
    try:
        row = await templates.change(pool, template_id, {"is_active": active}, admin=operator)
        return None if row is None else {k: str(v) if isinstance(v, UUID) else v for k, v in dict(row).items()}
    finally:
        await pool.close()
