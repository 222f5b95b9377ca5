"""Coupon commands: spend points on a coupon, use a code at the till, revoke a coupon.

Each is published to the redeemer (keyed by the coupon's owner) and answered from the redeemer's
reply. An Idempotency-Key makes a redemption's retries return the first answer; the code in an
answer is derived from the coupon id on the way out (shared/coupon_codes.py), never stored.
"""
from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from services.ingest import idempotency, readmodels
from services.ingest.commands.base import Reply, claim_key, record
from services.ingest.ports import Ports
from services.ingest.problems import Problem
from services.ingest.publisher import kafka_or_503, publish_or_503
from shared import topics
from shared.commands import Command, RedeemCoupon, RevokeCoupon, UseCoupon
from shared.coupon_codes import CouponKeys
from shared.events import CommandAnswered

REFUSALS = {
    "insufficient-points": (409, "You do not have enough points for this coupon."),
    "coupon-already-redeemed": (409, "This coupon has already been used."),
    "coupon-revoked": (409, "This coupon was revoked."),
    "coupon-expired": (409, "This coupon has expired."),
    "coupon-not-found": (404, "No such coupon."),
}


def refusal(answer: CommandAnswered, *, for_owner: bool) -> Problem:
    """The problem document for a refused command; only the coupon's owner hears about their balance."""
    status, detail = REFUSALS.get(answer.outcome, (409, answer.outcome))
    if not for_owner:
        return Problem(status, answer.outcome, detail)
    return Problem(status, answer.outcome, detail, available_points=answer.detail.get("available_points"))


async def send_and_wait(ports: Ports, command: Command) -> CommandAnswered | None:
    """Publish a command to the redeemer and wait for its answer; None when none came in time."""
    with kafka_or_503("request", topic=topics.REPLIES, operation="await-answers"):
        await ports.replies.expect(command.command_id)
    try:
        await publish_or_503(ports.publisher, topics.COMMANDS, command, key=command.user_id, what="request")
    except BaseException:  # refused, failed or cancelled: nobody waits, so the reader may rest again
        ports.replies.forget(command.command_id)
        raise
    return await ports.replies.wait(command.command_id, ports.settings.redemption_timeout_seconds)


async def answer_or_problem(ports: Ports, command: Command, *, expected: str, for_owner: bool) -> CommandAnswered:
    """The redeemer's answer when it is the expected outcome; otherwise the problem to answer with."""
    answer = await send_and_wait(ports, command)
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


def _replayed(keys: CouponKeys):
    def replay(answered: idempotency.Answered) -> Reply:
        body = dict(answered.response)
        if "coupon_id" in body and answered.status_code == 201:
            body["code"] = keys.code_for(UUID(body["coupon_id"]))
        return Reply(answered.status_code, body, {"Location": f"/v1/redemptions/{answered.command_id}"}
                     if answered.status_code == 201 else {})
    return replay


async def _refuse(ports: Ports, scope: str, key: str, problem: Problem) -> Problem:
    """Keep a refusal as the key's answer, so a retry hears the same rather than "still in flight"."""
    await idempotency.record_answer(ports.pool, scope=scope, key=key, status_code=problem.status,
                                    response=problem.document())
    return problem


async def redeem(ports: Ports, *, user_id: str, template_id: UUID, key: str, now: datetime) -> Reply:
    # The key first: a key reused with another body is that, whatever the body names.
    scope = f"redeem:{user_id}"
    claimed = await claim_key(ports, scope=scope, key=key, request={"template_id": template_id}, now=now,
                              replay=_replayed(ports.keys))
    if isinstance(claimed, Reply):
        return claimed
    template = await readmodels.template_terms(ports.pool, template_id)
    if template is None:
        raise await _refuse(ports, scope, key, Problem(404, "template-not-found", "No such coupon template."))
    if not template["is_active"]:
        raise await _refuse(ports, scope, key, Problem(409, "template-inactive", "This coupon is not offered any more."))
    # A fresh key, or one whose first request died: (re)send the same command; the redeemer answers once.
    command = RedeemCoupon(command_id=claimed.command_id, user_id=user_id, issued_at=now, template_id=template_id,
                           points_cost=template["points_cost"], valid_days=template["valid_days"])
    answer = await send_and_wait(ports, command)
    if answer is None:
        body = {"redemption_id": str(command.command_id), "status": "pending"}
        return Reply(202, body, {"Location": f"/v1/redemptions/{command.command_id}", "Retry-After": "1"})
    if answer.outcome != "redeemed":
        raise await _refuse(ports, scope, key, refusal(answer, for_owner=True))
    body = redemption_body(answer, ports.keys)
    # Everything but the code is kept; a replay derives the code again.
    await record(ports, scope=scope, key=key, reply=Reply(201, {k: v for k, v in body.items() if k != "code"}))
    return Reply(201, body, {"Location": f"/v1/redemptions/{command.command_id}"})


async def use_code(ports: Ports, *, merchant: str, coupon_id: UUID, owner: str, now: datetime) -> Reply:
    command = UseCoupon(command_id=uuid4(), user_id=owner, issued_at=now, coupon_id=coupon_id, merchant=merchant)
    # A merchant learns the coupon's fate, nothing about its owner.
    answer = await answer_or_problem(ports, command, expected="redeemed", for_owner=False)
    return Reply(200, {"coupon_id": str(coupon_id), "template_id": answer.detail["template_id"], "status": "redeemed"})


async def revoke(ports: Ports, *, admin: str, coupon_id: UUID, refund: bool, now: datetime) -> Reply:
    owner = await readmodels.coupon_owner(ports.pool, coupon_id)
    if owner is None:
        raise Problem(404, "coupon-not-found", "No such coupon.")
    command = RevokeCoupon(command_id=uuid4(), user_id=owner, issued_at=now, coupon_id=coupon_id, admin=admin,
                           refund=refund)
    answer = await answer_or_problem(ports, command, expected="revoked", for_owner=True)
    return Reply(200, {"coupon_id": str(coupon_id), "status": "revoked",
                       "refunded_points": answer.detail["refunded_points"]})
