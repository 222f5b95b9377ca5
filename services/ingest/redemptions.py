"""The gateway's coupon commands: spend points, use a code at the till, revoke, award.

Each command is published to the redeemer (keyed by the coupon owner) and answered from the
redeemer's reply. Idempotency keys make retries return the first answer; the coupon code in an
answer is derived from the coupon id on the way out (shared/coupon_codes.py), never stored.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4, uuid5

import asyncpg

from services.ingest import idempotency
from services.ingest.problems import Problem
from services.ingest.publisher import publish_or_503
from services.ingest.ports import Ports
from shared import topics
from shared.commands import ClawBack, Command, RedeemCoupon, RevokeCoupon, UseCoupon
from shared.coupon_codes import CouponKeys
from shared.events import CommandAnswered, EventDecided

REFUSALS = {
    "insufficient-points": (409, "You do not have enough points for this coupon."),
    "coupon-already-redeemed": (409, "This coupon has already been used."),
    "coupon-revoked": (409, "This coupon was revoked."),
    "coupon-expired": (409, "This coupon has expired."),
    "coupon-not-found": (404, "No such coupon."),
}
_AWARD_IDS = UUID("0e3f6d1c-7e7b-4d8a-8f5e-3a1f9b2c4d6e")


@dataclass(frozen=True)
class Reply:
    status_code: int
    body: dict
    headers: dict


def request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def refusal(answer: CommandAnswered, *, for_owner: bool) -> Problem:
    """The problem document for a refused command; only the coupon's owner hears about their balance."""
    status, detail = REFUSALS.get(answer.outcome, (409, answer.outcome))
    if not for_owner:
        return Problem(status, answer.outcome, detail)
    return Problem(status, answer.outcome, detail, available_points=answer.detail.get("available_points"))


async def _send_and_wait(ports: Ports, command: Command) -> CommandAnswered | None:
    ports.replies.expect(command.command_id)
    try:
        await publish_or_503(ports.publisher, topics.COMMANDS, command, key=command.user_id, what="request")
    except Problem:
        ports.replies.forget(command.command_id)
        raise
    return await ports.replies.wait(command.command_id, ports.settings.redemption_timeout_seconds)


async def _answer_or_problem(ports: Ports, command: Command, *, expected: str, for_owner: bool) -> CommandAnswered:
    """The redeemer's answer when it is the expected outcome; otherwise the problem to answer with."""
    answer = await _send_and_wait(ports, command)
    if answer is None:
        raise Problem(503, "redemption-timeout", "The coupon service did not answer in time; try again.",
                      headers={"Retry-After": "1"})
    if answer.outcome != expected:
        raise refusal(answer, for_owner=for_owner)
    return answer


def redemption_body(answer: CommandAnswered, keys: CouponKeys) -> dict:
    coupon_id = UUID(answer.detail["coupon_id"])
    return {"redemption_id": str(answer.command_id), "coupon_id": str(coupon_id), "code": keys.code_for(coupon_id),
            "points_cost": answer.detail["points_cost"], "available_points": answer.detail["available_points"],
            "expires_at": answer.detail["expires_at"]}


def _stored(body: dict) -> dict:
    """What may be kept of an answer: everything but the code, which is derived again on replay."""
    return {k: v for k, v in body.items() if k != "code"}


def _replayed(answered: idempotency.Answered, keys: CouponKeys) -> Reply:
    body = dict(answered.response)
    if "coupon_id" in body and answered.status_code == 201:
        body["code"] = keys.code_for(UUID(body["coupon_id"]))
    return Reply(answered.status_code, body, {"Location": f"/v1/redemptions/{answered.command_id}"}
                 if answered.status_code == 201 else {})


async def redeem(ports: Ports, *, user_id: str, template_id: UUID, key: str, now: datetime) -> Reply:
    # The key first: a key reused with another body is that, whatever the body names.
    scope = f"redeem:{user_id}"
    claimed = await idempotency.claim(ports.pool, scope=scope, key=key,
                                      request_hash=request_hash({"template_id": template_id}),
                                      ttl=timedelta(hours=ports.settings.idempotency_ttl_hours), now=now)
    match claimed:
        case idempotency.KeyReused():
            raise Problem(422, "idempotency-key-reused", "This Idempotency-Key was used for another request.",
                          title="Unprocessable Content")
        case idempotency.Answered():
            return _replayed(claimed, ports.keys)
        case idempotency.InFlight(since=since) if now - since < timedelta(seconds=ports.settings.redemption_timeout_seconds * 2):
            raise Problem(409, "request-in-flight", "A request with this Idempotency-Key is still being processed.",
                          headers={"Retry-After": "1"})
    template = await ports.pool.fetchrow(
        "SELECT points_cost, valid_days, is_active FROM coupon_templates WHERE template_id = $1", template_id)
    if template is None or not template["is_active"]:
        problem = (Problem(404, "template-not-found", "No such coupon template.") if template is None
                   else Problem(409, "template-inactive", "This coupon is not offered any more."))
        # The key's answer, so a retry hears the same refusal rather than "still in flight".
        await idempotency.record_answer(ports.pool, scope=scope, key=key, status_code=problem.status,
                                        response=problem.document())
        raise problem
    # A fresh key, or one whose first request died: (re)send the same command; the redeemer answers once.
    command = RedeemCoupon(command_id=claimed.command_id, user_id=user_id, issued_at=now, template_id=template_id,
                           points_cost=template["points_cost"], valid_days=template["valid_days"])
    answer = await _send_and_wait(ports, command)
    if answer is None:
        body = {"redemption_id": str(command.command_id), "status": "pending"}
        return Reply(202, body, {"Location": f"/v1/redemptions/{command.command_id}", "Retry-After": "1"})
    if answer.outcome == "redeemed":
        body = redemption_body(answer, ports.keys)
        await idempotency.record_answer(ports.pool, scope=scope, key=key, status_code=201, response=_stored(body))
        return Reply(201, body, {"Location": f"/v1/redemptions/{command.command_id}"})
    problem = refusal(answer, for_owner=True)
    await idempotency.record_answer(ports.pool, scope=scope, key=key, status_code=problem.status,
                                    response=problem.document())
    raise problem


async def use_code(ports: Ports, *, merchant: str, code_owner: asyncpg.Record, now: datetime) -> Reply:
    command = UseCoupon(command_id=uuid4(),
                        user_id=code_owner["user_id"], issued_at=now, coupon_id=code_owner["coupon_id"],
                        merchant=merchant)
    # A merchant learns the coupon's fate, nothing about its owner.
    answer = await _answer_or_problem(ports, command, expected="redeemed", for_owner=False)
    return Reply(200, {"coupon_id": str(code_owner["coupon_id"]), "template_id": answer.detail["template_id"],
                       "status": "redeemed"}, {})


async def revoke(ports: Ports, *, admin: str, coupon: asyncpg.Record, refund: bool, now: datetime) -> Reply:
    command = RevokeCoupon(command_id=uuid4(),
                           user_id=coupon["user_id"], issued_at=now, coupon_id=coupon["coupon_id"], admin=admin,
                           refund=refund)
    answer = await _answer_or_problem(ports, command, expected="revoked", for_owner=True)
    return Reply(200, {"coupon_id": str(coupon["coupon_id"]), "status": "revoked",
                       "refunded_points": answer.detail["refunded_points"]}, {})


async def claw_back(ports: Ports, *, admin: str, user_id: str, points: int | None, event_ids: list[UUID] | None,
                    reason: str, key: str, now: datetime) -> Reply:
    """Take points back through the redeemer, which owns the balance: never below zero, the rest recorded."""
    scope = f"clawback:{admin}"
    claimed = await idempotency.claim(
        ports.pool, scope=scope, key=key, ttl=timedelta(hours=ports.settings.idempotency_ttl_hours), now=now,
        request_hash=request_hash({"user_id": user_id, "points": points, "reason": reason,
                                   "event_ids": sorted(str(e) for e in event_ids) if event_ids else None}))
    match claimed:
        case idempotency.KeyReused():
            raise Problem(422, "idempotency-key-reused", "This Idempotency-Key was used for another request.",
                          title="Unprocessable Content")
        case idempotency.Answered():
            return Reply(claimed.status_code, claimed.response, {})
        case idempotency.InFlight(since=since) if now - since < timedelta(seconds=ports.settings.redemption_timeout_seconds * 2):
            raise Problem(409, "request-in-flight", "A request with this Idempotency-Key is still being processed.",
                          headers={"Retry-After": "1"})
    command = ClawBack(command_id=claimed.command_id, user_id=user_id, issued_at=now, admin=admin, reason=reason,
                       points=points, event_ids=tuple(event_ids) if event_ids else None)
    answer = await _answer_or_problem(ports, command, expected="clawed-back", for_owner=True)
    detail = answer.detail
    body = {"event_id": detail["event_id"], "user_id": user_id, "requested_points": detail["requested_points"],
            "recovered_points": detail["recovered_points"], "unrecovered_points": detail["unrecovered_points"],
            "reversed_event_ids": detail["reversed_event_ids"], "available_points": detail["available_points"],
            "validated_by": admin, "reason": reason}
    await idempotency.record_answer(ports.pool, scope=scope, key=key, status_code=201, response=body)
    return Reply(201, body, {})


async def award(ports: Ports, *, admin: str, user_id: str, points: int, reason: str, key: str,
                now: datetime) -> Reply:
    scope = f"award:{admin}"
    claimed = await idempotency.claim(ports.pool, scope=scope, key=key,
                                      request_hash=request_hash({"user_id": user_id, "points": points,
                                                                 "reason": reason}),
                                      ttl=timedelta(hours=ports.settings.idempotency_ttl_hours), now=now)
    if isinstance(claimed, idempotency.KeyReused):
        raise Problem(422, "idempotency-key-reused", "This Idempotency-Key was used for another request.",
                      title="Unprocessable Content")
    if isinstance(claimed, idempotency.Answered):
        return Reply(claimed.status_code, claimed.response, {})
    # The ledger id follows from the claim, so a retry after a crash publishes the same record again.
    event_id = uuid5(_AWARD_IDS, f"award:{claimed.command_id}")
    record = EventDecided(event_id=event_id, user_id=user_id, event_type="admin_award", event_time=now,
                          points_delta=points, proof_type="manual_admin", validation_status="validated",
                          trust_score=100, reasons=(reason,), rule_set="admin", validated_by=admin, decided_at=now)
    await publish_or_503(ports.publisher, topics.LEDGER, record, key=user_id, what="award")
    body = {"event_id": str(event_id), "user_id": user_id, "points": points, "reason": reason,
            "validated_by": admin}
    await idempotency.record_answer(ports.pool, scope=scope, key=key, status_code=201, response=body)
    return Reply(201, body, {})
