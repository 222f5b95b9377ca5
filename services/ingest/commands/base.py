"""What every command shares: its answer, and claiming an Idempotency-Key once."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.ingest import idempotency
from services.ingest.ports import Ports
from services.ingest.problems import Problem


@dataclass(frozen=True)
class Reply:
    status_code: int
    body: dict
    headers: dict = field(default_factory=dict)


def request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _as_answered(answered: idempotency.Answered) -> Reply:
    return Reply(answered.status_code, answered.response)


async def claim_key(ports: Ports, *, scope: str, key: str, request: dict, now: datetime,
                    replay: Callable[[idempotency.Answered], Reply] = _as_answered) -> idempotency.Fresh | Reply:
    """The key's claim for this request: Fresh (or a first attempt that died) to go ahead with, or
    the first answer to repeat. A key reused for another request, or one whose first request is
    still running, is refused."""
    claimed = await idempotency.claim(ports.pool, scope=scope, key=key, request_hash=request_hash(request),
                                      ttl=timedelta(hours=ports.settings.idempotency_ttl_hours), now=now)
    match claimed:
        case idempotency.KeyReused():
            raise Problem(422, "idempotency-key-reused", "This Idempotency-Key was used for another request.",
                          title="Unprocessable Content")
        case idempotency.Answered():
            return replay(claimed)
        case idempotency.InFlight(since=since) if now - since < timedelta(
                seconds=ports.settings.redemption_timeout_seconds * 2):
            raise Problem(409, "request-in-flight", "A request with this Idempotency-Key is still being processed.",
                          headers={"Retry-After": "1"})
    # Fresh, or in flight so long that its first request died: go ahead with the same command id.
    return idempotency.Fresh(claimed.command_id)


async def record(ports: Ports, *, scope: str, key: str, reply: Reply) -> Reply:
    """Keep the answer for the key's retries; the reply, for returning."""
    await idempotency.record_answer(ports.pool, scope=scope, key=key, status_code=reply.status_code,
                                    response=reply.body)
    return reply
