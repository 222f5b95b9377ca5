"""The redeemer's account against a model of the money: hypothesis drives any sequence of ledger
records and commands through `Account` and checks it against a plain ledger kept beside it.

The model is what an auditor would compute: the balance is the sum of each ledger event's latest
validated delta, the redeemer's own debits, refunds and clawbacks included. A validated credit
that is withdrawn after it was spent (our validator never does this: a validated decision is
final, and credits are taken back by clawbacks, which never go below zero) is followed exactly:
the balance may then be negative, and nothing is redeemed until it covers the cost again.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.redeemer.account import ANSWER_HORIZON, Account
from shared.commands import ClawBack, Command, RedeemCoupon, RevokeCoupon, UseCoupon
from shared.coupon_codes import CouponKeys
from shared.events import CouponIssued, CouponRevoked, CouponUsed, EventDecided

KEYS = CouponKeys(b"c" * 32, ("k1", b"s" * 32))
START = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)
TEMPLATE = UUID("00000000-0000-4000-8000-000000000001")
STATUSES = ("validated", "rejected", "pending_review")


class AccountModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.account = Account()
        self.now = START
        # event id -> its latest ledger record, as the projector's table would hold it
        self.ledger: dict[str, EventDecided] = {}
        self.credits: list[str] = []  # external events (the validator's), which may be re-decided
        self.own_records: list[EventDecided] = []  # the redeemer's, which come back on the ledger
        # coupon id -> {"status", "cost", "expires_at", "refunded"}
        self.coupons: dict[str, dict] = {}
        # command, its answer, when it was answered
        self.answered: list[tuple[Command, dict, datetime]] = []
        self.unrecovered = 0
        self.clawed: set[str] = set()
        self.withdrawn_after_spending = False
        self.last_handled = START

    # -- the model ------------------------------------------------------------------------------
    def balance(self) -> int:
        return sum(r.points_delta for r in self.ledger.values() if r.validation_status == "validated")

    def counted(self, event_id: str) -> int:
        record = self.ledger.get(event_id)
        return record.points_delta if record and record.validation_status == "validated" else 0

    def record(self, record: EventDecided) -> None:
        self.ledger[str(record.event_id)] = record

    def handle(self, command: Command):
        events, answer = self.account.handle(command, KEYS, self.now)
        self.answered.append((command, answer.model_dump(mode="json"), self.now))
        self.last_handled = self.now
        assert answer.detail["available_points"] == self.account.balance
        own = [e for e in events if isinstance(e, EventDecided)]
        for record in own:
            self.record(record)
        self.own_records += own
        return events, answer

    # -- the ledger ----------------------------------------------------------------------------
    @rule(points=st.integers(1, 2000), status=st.sampled_from(STATUSES))
    def credit(self, points, status):
        record = EventDecided(
            event_id=uuid4(), user_id="u1", event_type="habit_completed", event_time=self.now, points_delta=points,
            proof_type="server", validation_status=status, trust_score=80, rule_set="model", validated_by="validator",
            decided_at=self.now)
        self.account.apply_ledger(record)
        self.record(record)
        self.credits.append(str(record.event_id))

    @precondition(lambda self: self.credits)
    @rule(data=st.data(), status=st.sampled_from(STATUSES))
    def redecide(self, data, status):
        """A later decision for the same event replaces the earlier one (a review's verdict)."""
        event_id = data.draw(st.sampled_from(self.credits))
        before = self.ledger[event_id]
        again = before.model_copy(update={"validation_status": status})
        if before.validation_status == "validated" and status != "validated" and \
                self.account.balance < before.points_delta:
            self.withdrawn_after_spending = True
        self.account.apply_ledger(again)
        self.record(again)

    @precondition(lambda self: self.own_records)
    @rule(data=st.data())
    def own_record_comes_back(self, data):
        """What the redeemer wrote, read back from the ledger topic, is recognised, not counted again."""
        self.account.apply_ledger(data.draw(st.sampled_from(self.own_records)))

    # -- commands ------------------------------------------------------------------------------
    @rule(cost=st.integers(1, 1500), valid_days=st.integers(1, 60))
    def redeem(self, cost, valid_days):
        could_afford = self.balance() >= cost
        command = RedeemCoupon(command_id=uuid4(), user_id="u1", issued_at=self.now, template_id=TEMPLATE,
                               points_cost=cost, valid_days=valid_days)
        events, answer = self.handle(command)
        if not could_afford:
            assert (events, answer.outcome) == ([], "insufficient-points")
            return
        debit, issued = events
        assert answer.outcome == "redeemed" and debit.points_delta == -cost
        assert isinstance(issued, CouponIssued) and issued.points_cost == cost
        self.coupons[str(issued.coupon_id)] = {"status": "issued", "cost": cost, "expires_at": issued.expires_at,
                                               "refunded": False}

    def _coupon(self, data) -> UUID:
        """Mostly a coupon this account was issued; sometimes one it never was."""
        known = [UUID(c) for c in self.coupons]
        return data.draw(st.sampled_from(known) if known and data.draw(st.integers(0, 4)) else st.uuids())

    def _refusal(self, coupon_id: UUID) -> str | None:
        coupon = self.coupons.get(str(coupon_id))
        if coupon is None:
            return "coupon-not-found"
        if coupon["status"] != "issued":
            return {"used": "coupon-already-redeemed", "revoked": "coupon-revoked"}[coupon["status"]]
        return "coupon-expired" if coupon["expires_at"] <= self.now else None

    @rule(data=st.data())
    def use(self, data):
        coupon_id = self._coupon(data)
        refusal = self._refusal(coupon_id)
        events, answer = self.handle(UseCoupon(command_id=uuid4(), user_id="u1", issued_at=self.now,
                                               coupon_id=coupon_id, merchant="m1"))
        if refusal:
            assert (events, answer.outcome) == ([], refusal)
            return
        assert answer.outcome == "redeemed" and [type(e) for e in events] == [CouponUsed]
        self.coupons[str(coupon_id)]["status"] = "used"

    @rule(data=st.data(), refund=st.booleans())
    def revoke(self, data, refund):
        coupon_id = self._coupon(data)
        refusal = self._refusal(coupon_id)
        events, answer = self.handle(RevokeCoupon(command_id=uuid4(), user_id="u1", issued_at=self.now,
                                                  coupon_id=coupon_id, admin="a1", refund=refund))
        if refusal and refusal != "coupon-expired":  # an expired coupon can still be revoked
            assert (events, answer.outcome) == ([], refusal)
            return
        coupon = self.coupons[str(coupon_id)]
        assert answer.outcome == "revoked" and isinstance(events[-1], CouponRevoked)
        refunds = [e for e in events if isinstance(e, EventDecided)]
        if refund:
            assert not coupon["refunded"]
            assert [r.points_delta for r in refunds] == [coupon["cost"]]
            coupon["refunded"] = True
        else:
            assert refunds == []
        coupon["status"] = "revoked"

    @rule(points=st.integers(1, 3000))
    def claw_back_points(self, points):
        recovered = max(0, min(points, self.balance()))
        [record], answer = self.handle(ClawBack(command_id=uuid4(), user_id="u1", issued_at=self.now, admin="a1",
                                                reason="model", points=points))
        self.unrecovered += points - recovered
        assert record.points_delta == -recovered
        assert (answer.detail["recovered_points"], answer.detail["unrecovered_points"]) == (
            recovered, points - recovered)

    @precondition(lambda self: self.credits)
    @rule(data=st.data())
    def claw_back_events(self, data):
        chosen = data.draw(st.lists(st.sampled_from(self.credits), min_size=1, max_size=3, unique=True))
        taken = {e for e in chosen if self.counted(e) > 0 and e not in self.clawed}
        requested = sum(self.counted(e) for e in taken)
        recovered = max(0, min(requested, self.balance()))
        [record], answer = self.handle(ClawBack(command_id=uuid4(), user_id="u1", issued_at=self.now, admin="a1",
                                                reason="model", event_ids=tuple(UUID(e) for e in chosen)))
        self.clawed |= taken
        self.unrecovered += requested - recovered
        assert set(answer.detail["reversed_event_ids"]) == taken
        assert record.points_delta == -recovered

    @precondition(lambda self: self.answered)
    @rule(data=st.data())
    def repeat_a_command(self, data):
        """A retry within the answer window gets the first answer and changes nothing."""
        fresh = [(c, a) for c, a, at in self.answered if at > self.now - ANSWER_HORIZON]
        if not fresh:
            return
        command, first = data.draw(st.sampled_from(fresh))
        balance = self.account.balance
        events, answer = self.account.handle(command, KEYS, self.now)
        assert events == [] and answer.model_dump(mode="json") == first
        assert self.account.balance == balance

    @rule(step=st.sampled_from([timedelta(minutes=5), timedelta(hours=6), timedelta(days=2), timedelta(days=20)]))
    def time_passes(self, step):
        self.now += step

    @rule()
    def restart_from_the_changelog(self):
        """The account as the redeemer stores it and reads it back after a restart."""
        stored = json.loads(json.dumps(self.account.to_dict()))
        self.account = Account.from_dict(stored)

    # -- what must always hold -----------------------------------------------------------------
    @invariant()
    def the_balance_is_the_ledgers(self):
        assert self.account.balance == self.balance()

    @invariant()
    def the_balance_goes_negative_only_when_a_spent_credit_is_withdrawn(self):
        assert self.account.balance >= 0 or self.withdrawn_after_spending

    @invariant()
    def what_could_not_be_clawed_back_is_owed(self):
        assert self.account.unrecovered == self.unrecovered

    @invariant()
    def answers_outside_the_window_are_forgotten(self):
        """Kept answers stay bounded: each command handled drops those past the window."""
        answered = [datetime.fromisoformat(a["answered_at"]) for a in self.account.answers.values()]
        assert all(at >= self.last_handled - ANSWER_HORIZON for at in answered)


# Bounded for `make test`, with a fixed seed so a failure here fails the same way on every machine.
AccountModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40, derandomize=True,
                                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
test_the_redeemers_account_agrees_with_a_model_of_the_ledger = AccountModel.TestCase
