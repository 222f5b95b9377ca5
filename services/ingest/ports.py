"""The gateway's adapters, made once at start-up and handed to every handler as one object."""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.ingest.claims import Claims, PublishedMarks
from services.ingest.publisher import KafkaPublisher
from services.ingest.replies import ReplyWaiter
from shared.coupon_codes import CouponKeys
from shared.settings import Settings


@dataclass(frozen=True)
class Ports:
    pool: asyncpg.Pool
    publisher: KafkaPublisher
    claims: Claims
    marks: PublishedMarks
    replies: ReplyWaiter
    settings: Settings
    keys: CouponKeys
