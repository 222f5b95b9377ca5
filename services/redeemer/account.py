"""What the redeemer knows of one user, and how commands change it. Pure: no I/O, the clock passed in.

The spendable balance is every validated ledger delta, counted once per ledger event id (a
decision may be replaced by a later one for the same event, as a review does). The redeemer's
own debits and refunds are counted when it decides them, and recognised by id when they come
back on the ledger. Each command is answered once; a repeat gets the first answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID, uuid5

from shared.commands import ClawBack, Command, RedeemCoupon, RevokeCoupon, UseCoupon
from shared.coupon_codes import CouponKeys
from shared.events import CommandAnswered, CouponIssued, CouponRevoked, CouponUsed, Event, EventDecided

REDEEMER = "redeemer"
# Answers are kept long enough to cover every retry the gateway's idempotency keys allow.
ANSWER_HORIZON = timedelta(hours=49)
_IDS = UUID("6c1f6a5e-3b0a-4c38-9a7e-0b8f5f7f1d2a")


def derived_id(kind: str, command_id: UUID) -> UUID:
    """Ids of what a command produces follow from the command, so a replay produces the same ones."""
    return uuid5(_IDS, f"{kind}:{command_id}")


@dataclass
class Account:
    balance: int = 0
    counted: dict[str, int] = field(default_factory=dict)
    coupons: dict[str, dict] = field(default_factory=dict)
    answers: dict[str, dict] = field(default_factory=dict)
    # Points clawed back that the balance could not cover: owed, shown to admins, never a negative balance.
    unrecovered: int = 0
    # Events whose credit a clawback already reversed.
    clawed_back: list[str] = field(default_factory=list)

    # -- the ledger --------------------------------------------------------------------------
    def apply_ledger(self, record: EventDecided) -> bool:
        """Count a ledger record; False when it changes nothing (one counted already, as the
        redeemer's own debits are when they come back)."""
        key = str(record.event_id)
        now_counts = record.points_delta if record.validation_status == "validated" else 0
        if self.counted.get(key, 0) == now_counts:
            return False
        self.balance += now_counts - self.counted.get(key, 0)
        if now_counts:
            self.counted[key] = now_counts
        else:
            del self.counted[key]
        return True

    # -- commands ----------------------------------------------------------------------------
    def handle(self, command: Command, keys: CouponKeys, now: datetime) -> tuple[list[Event], CommandAnswered]:
        """New ledger and coupon events (in order), and the answer. A repeated command changes nothing."""
        previous = self.answers.get(str(command.command_id))
        if previous is not None:
            return [], CommandAnswered.model_validate(previous)
        if isinstance(command, RedeemCoupon):
            events, outcome, detail = self._redeem(command, keys, now)
        elif isinstance(command, UseCoupon):
            events, outcome, detail = self._use(command, now)
        elif isinstance(command, RevokeCoupon):
            events, outcome, detail = self._revoke(command, now)
        elif isinstance(command, ClawBack):
            events, outcome, detail = self._claw_back(command, now)
        else:
            raise TypeError(f"no handler for {type(command).__name__}")
        answer = CommandAnswered(command_id=command.command_id, user_id=command.user_id,
                                 command=type(command).__name__, outcome=outcome,
                                 detail={**detail, "available_points": self.balance}, answered_at=now)
        self.answers[str(command.command_id)] = answer.model_dump(mode="json")
        self._forget_old_answers(now)
        return events, answer

    def _credit_or_debit(self, record: EventDecided) -> EventDecided:
        self.apply_ledger(record)
        return record

    def _redeem(self, command: RedeemCoupon, keys: CouponKeys, now: datetime):
        if self.balance < command.points_cost:
            return [], "insufficient-points", {"points_cost": command.points_cost}
        coupon_id = derived_id("coupon", command.command_id)
        expires_at = now + timedelta(days=command.valid_days)
        debit = self._credit_or_debit(EventDecided(
            event_id=derived_id("debit", command.command_id), user_id=command.user_id,
            event_type="coupon_redemption", event_time=now, points_delta=-command.points_cost,
            proof_type="server", validation_status="validated", trust_score=100, reasons=(),
            rule_set="redeemer-v1", validated_by=REDEEMER, decided_at=now,
            related_entity_type="coupon", related_entity_id=str(coupon_id)))
        issued = CouponIssued(
            coupon_id=coupon_id, redemption_id=command.command_id, user_id=command.user_id,
            template_id=command.template_id, code_hash=keys.hash_for(keys.code_for(coupon_id)),
            code_key_id=keys.current_id, points_cost=command.points_cost, issued_at=now, expires_at=expires_at)
        self.coupons[str(coupon_id)] = {"status": "issued", "points_cost": command.points_cost,
                                        "template_id": str(command.template_id), "expires_at": expires_at.isoformat()}
        return [debit, issued], "redeemed", {
            "coupon_id": str(coupon_id), "template_id": str(command.template_id),
            "points_cost": command.points_cost, "expires_at": expires_at.isoformat()}

    def _coupon_state(self, coupon_id: UUID, now: datetime) -> tuple[dict | None, str | None]:
        coupon = self.coupons.get(str(coupon_id))
        if coupon is None:
            return None, "coupon-not-found"
        if coupon["status"] == "redeemed":
            return coupon, "coupon-already-redeemed"
        if coupon["status"] == "revoked":
            return coupon, "coupon-revoked"
        if datetime.fromisoformat(coupon["expires_at"]) <= now:
            return coupon, "coupon-expired"
        return coupon, None

    def _use(self, command: UseCoupon, now: datetime):
        coupon, refusal = self._coupon_state(command.coupon_id, now)
        detail = {"coupon_id": str(command.coupon_id)}
        if refusal:
            return [], refusal, {**detail, "template_id": coupon and coupon["template_id"]}
        coupon["status"] = "redeemed"
        used = CouponUsed(coupon_id=command.coupon_id, user_id=command.user_id, merchant=command.merchant,
                          used_at=now)
        return [used], "redeemed", {**detail, "template_id": coupon["template_id"]}

    def _revoke(self, command: RevokeCoupon, now: datetime):
        coupon, refusal = self._coupon_state(command.coupon_id, now)
        detail = {"coupon_id": str(command.coupon_id)}
        if refusal in ("coupon-not-found", "coupon-already-redeemed", "coupon-revoked"):
            return [], refusal, detail
        coupon["status"] = "revoked"
        refund = coupon["points_cost"] if command.refund else 0
        events: list[Event] = []
        if refund:
            events.append(self._credit_or_debit(EventDecided(
                event_id=derived_id("refund", command.command_id), user_id=command.user_id,
                event_type="coupon_refund", event_time=now, points_delta=refund, proof_type="manual_admin",
                validation_status="validated", trust_score=100, reasons=(), rule_set="redeemer-v1",
                validated_by=command.admin, decided_at=now, related_entity_type="coupon",
                related_entity_id=str(command.coupon_id))))
        events.append(CouponRevoked(coupon_id=command.coupon_id, user_id=command.user_id, admin=command.admin,
                                    refunded_points=refund, revoked_at=now))
        return events, "revoked", {**detail, "refunded_points": refund}

    def _claw_back(self, command: ClawBack, now: datetime):
        """Take back an amount, or what the chosen events credited (as counted now); never below zero."""
        if command.event_ids is not None:
            # Each event's credit is taken back once, however many clawbacks name it.
            reversed_events = sorted({str(e) for e in command.event_ids
                                      if self.counted.get(str(e), 0) > 0 and str(e) not in self.clawed_back})
            requested = sum(self.counted[e] for e in reversed_events)
            self.clawed_back.extend(reversed_events)
        else:
            requested, reversed_events = command.points or 0, []
        recovered = max(0, min(requested, self.balance))
        unrecovered = requested - recovered
        self.unrecovered += unrecovered
        record = self._credit_or_debit(EventDecided(
            event_id=derived_id("clawback", command.command_id), user_id=command.user_id, event_type="clawback",
            event_time=now, points_delta=-recovered, proof_type="manual_admin", validation_status="validated",
            trust_score=100, reasons=(command.reason, *(f"reverses:{e}" for e in reversed_events),
                                      *((f"unrecovered:{unrecovered}",) if unrecovered else ())),
            rule_set="redeemer-v1", validated_by=command.admin, decided_at=now, related_entity_type="clawback",
            related_entity_id=str(command.command_id)))
        return [record], "clawed-back", {"event_id": str(record.event_id), "requested_points": requested,
                                         "recovered_points": recovered, "unrecovered_points": unrecovered,
                                         "reversed_event_ids": reversed_events,
                                         "unrecovered_total": self.unrecovered}

    def _forget_old_answers(self, now: datetime) -> None:
        horizon = now - ANSWER_HORIZON
        self.answers = {k: v for k, v in self.answers.items()
                        if datetime.fromisoformat(v["answered_at"]) >= horizon}

    # -- the changelog -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"balance": self.balance, "counted": self.counted, "coupons": self.coupons, "answers": self.answers,
                "unrecovered": self.unrecovered, "clawed_back": self.clawed_back}

    @classmethod
    def from_dict(cls, raw: dict | None) -> "Account":
        return cls(**raw) if raw else cls()
