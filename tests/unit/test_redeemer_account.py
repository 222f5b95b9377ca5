from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from services.redeemer.account import Account
from shared.commands import RedeemCoupon, RevokeCoupon, UseCoupon
from shared.coupon_codes import CouponKeys
from shared.events import CouponIssued, CouponRevoked, CouponUsed, EventDecided

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
KEYS = CouponKeys(b"c" * 32, ("k1", b"s" * 32))
TEMPLATE = uuid4()


def credit(points: int, status: str = "validated", event_id=None) -> EventDecided:
    return EventDecided(event_id=event_id or uuid4(), user_id="u1", event_type="admin_award", event_time=NOW,
                        points_delta=points, proof_type="manual_admin", validation_status=status, trust_score=100,
                        rule_set="t", validated_by="admin", decided_at=NOW)


def redeem(cost: int = 500, command_id=None) -> RedeemCoupon:
    return RedeemCoupon(command_id=command_id or uuid4(), user_id="u1", issued_at=NOW, template_id=TEMPLATE,
                        points_cost=cost, valid_days=30)


def funded(points: int) -> Account:
    account = Account()
    account.apply_ledger(credit(points))
    return account


def test_a_redemption_the_balance_covers_debits_it_and_issues_a_hashed_coupon():
    account = funded(500)
    events, answer = account.handle(redeem(500), KEYS, NOW)
    debit, issued = events
    assert answer.outcome == "redeemed" and answer.detail["available_points"] == 0
    assert debit.points_delta == -500 and debit.event_type == "coupon_redemption"
    assert isinstance(issued, CouponIssued) and issued.code_hash == KEYS.hash_for(KEYS.code_for(issued.coupon_id))
    assert KEYS.code_for(issued.coupon_id) not in issued.model_dump_json()
    assert debit.related_entity_id == str(issued.coupon_id)


def test_a_redemption_the_balance_does_not_cover_changes_nothing():
    account = funded(499)
    events, answer = account.handle(redeem(500), KEYS, NOW)
    assert events == [] and answer.outcome == "insufficient-points" and account.balance == 499


def test_ten_redemptions_of_a_balance_that_pays_for_one_succeed_once():
    account = funded(500)
    outcomes = [account.handle(redeem(500), KEYS, NOW)[1].outcome for _ in range(10)]
    assert outcomes.count("redeemed") == 1 and outcomes.count("insufficient-points") == 9
    assert account.balance == 0


def test_a_repeated_command_gets_the_first_answer_and_spends_nothing_more():
    account = funded(1000)
    command = redeem(500)
    _, first = account.handle(command, KEYS, NOW)
    events, again = account.handle(command, KEYS, NOW + timedelta(seconds=5))
    assert events == [] and again == first and account.balance == 500


def test_the_redeemers_own_debit_coming_back_on_the_ledger_is_not_counted_twice():
    account = funded(500)
    events, _ = account.handle(redeem(500), KEYS, NOW)
    assert account.apply_ledger(events[0]) is False, "its own debit, read back, said to change the account"
    assert account.balance == 0


def test_a_ledger_record_says_whether_it_changed_the_account():
    account, event_id = Account(), uuid4()
    assert account.apply_ledger(credit(10, "pending_review", event_id)) is False
    assert account.apply_ledger(credit(10, "validated", event_id)) is True
    assert account.apply_ledger(credit(10, "validated", event_id)) is False
    assert account.apply_ledger(credit(10, "rejected", event_id)) is True
    assert account.balance == 0 and account.counted == {}


def test_a_decision_replaced_by_review_counts_once():
    account, event_id = Account(), uuid4()
    account.apply_ledger(credit(10, "pending_review", event_id))
    account.apply_ledger(credit(10, "validated", event_id))
    account.apply_ledger(credit(10, "validated", event_id))
    assert account.balance == 10
    account.apply_ledger(credit(10, "rejected", event_id))
    assert account.balance == 0


def issued_coupon(account: Account):
    events, _ = account.handle(redeem(500), KEYS, NOW)
    return events[1].coupon_id


def use(coupon_id, at=NOW):
    return UseCoupon(command_id=uuid4(), user_id="u1", issued_at=at, coupon_id=coupon_id, merchant="m1")


def test_a_coupon_is_used_once():
    account = funded(500)
    coupon = issued_coupon(account)
    events, first = account.handle(use(coupon), KEYS, NOW)
    _, second = account.handle(use(coupon), KEYS, NOW)
    assert isinstance(events[0], CouponUsed) and first.outcome == "redeemed"
    assert second.outcome == "coupon-already-redeemed"


def test_an_expired_coupon_cannot_be_used():
    account = funded(500)
    coupon = issued_coupon(account)
    later = NOW + timedelta(days=31)
    assert account.handle(use(coupon, later), KEYS, later)[1].outcome == "coupon-expired"


def revoke(coupon_id, refund: bool):
    return RevokeCoupon(command_id=uuid4(), user_id="u1", issued_at=NOW, coupon_id=coupon_id, admin="a1",
                        refund=refund)


@pytest.mark.parametrize("refund,balance", [(True, 500), (False, 0)])
def test_revoking_makes_a_coupon_unusable_and_refunds_if_asked(refund, balance):
    account = funded(500)
    coupon = issued_coupon(account)
    events, answer = account.handle(revoke(coupon, refund), KEYS, NOW)
    assert answer.outcome == "revoked" and account.balance == balance
    assert isinstance(events[-1], CouponRevoked)
    if refund:
        assert events[0].event_type == "coupon_refund" and events[0].validated_by == "a1"
    assert account.handle(use(coupon), KEYS, NOW)[1].outcome == "coupon-revoked"


def test_a_used_coupon_cannot_be_revoked_for_a_refund():
    account = funded(500)
    coupon = issued_coupon(account)
    account.handle(use(coupon), KEYS, NOW)
    events, answer = account.handle(revoke(coupon, True), KEYS, NOW)
    assert events == [] and answer.outcome == "coupon-already-redeemed" and account.balance == 0


def test_the_account_survives_its_changelog_round_trip():
    account = funded(800)
    issued_coupon(account)
    restored = Account.from_dict(account.to_dict())
    assert restored == account


def claw(points=None, event_ids=None, command_id=None):
    from shared.commands import ClawBack

    return ClawBack(command_id=command_id or uuid4(), user_id="u1", issued_at=NOW, admin="ada@example.com",
                    reason="fraud found later", points=points, event_ids=event_ids)


def test_a_clawback_the_balance_covers_is_a_clawback_record_naming_the_admin():
    account = funded(100)

    [record], answer = account.handle(claw(points=30), KEYS, NOW)

    assert (record.event_type, record.points_delta, record.validated_by) == ("clawback", -30, "ada@example.com")
    assert account.balance == 70 and answer.detail["unrecovered_points"] == 0


def test_a_clawback_beyond_the_balance_takes_it_to_zero_and_records_the_rest():
    account = funded(100)
    account.handle(redeem(80), KEYS, NOW)

    [record], answer = account.handle(claw(points=50), KEYS, NOW)

    assert record.points_delta == -20 and account.balance == 0
    assert (answer.detail["recovered_points"], answer.detail["unrecovered_points"]) == (20, 30)
    assert account.unrecovered == 30 and "unrecovered:30" in record.reasons


def test_clawing_back_chosen_events_takes_each_credit_once_and_a_repeat_answers_the_same():
    fraud, honest = uuid4(), uuid4()
    account = Account()
    account.apply_ledger(credit(40, event_id=fraud))
    account.apply_ledger(credit(25, event_id=honest))
    command = claw(event_ids=(fraud,))

    [record], answer = account.handle(command, KEYS, NOW)
    again_events, again = account.handle(command, KEYS, NOW)
    [second], later = account.handle(claw(event_ids=(fraud,)), KEYS, NOW)

    assert record.points_delta == -40 and account.balance == 25
    assert answer.detail["reversed_event_ids"] == [str(fraud)]
    assert again_events == [] and again == answer  # the same command: nothing new
    assert second.points_delta == 0 and later.detail["requested_points"] == 0  # that credit is gone already


def test_an_account_keeps_what_it_clawed_back_across_a_restart():
    account = funded(10)
    account.handle(claw(points=25), KEYS, NOW)

    restored = Account.from_dict(account.to_dict())

    assert (restored.balance, restored.unrecovered) == (0, 15)
