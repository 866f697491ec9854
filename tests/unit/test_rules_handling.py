"""RULEBOOK §3: handling a case, M1–M8, C1, F1 (automatic actions through ``fire``, people through ``act``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from factories import (
    DAY_3,
    DAY_10,
    DAY_20,
    PAID,
    PAID_FEN,
    SHIPPED,
    SHIPPING_FEN,
    approved_return,
    case_events,
    delivered_order,
    hours,
    item,
    new_case,
    paid_order,
    policy,
    shipped_order,
    snapshot,
    t,
)

from aftersales.domain.cases import Action, Auto, Case, CaseStatus, CloseReason, ShippingPayer, act, fire
from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.eligibility import evaluate
from aftersales.domain.errors import DomainError, InvalidInput, RuleViolation, StateConflict
from aftersales.domain.events import Actor
from aftersales.domain.orders import Order, RefundKind, RefundStatus
from aftersales.domain.policy import Policy
from aftersales.domain.timeutil import window_end

POL = policy()
M, B, P = Actor.MERCHANT, Actor.BUYER, Actor.PLATFORM


def do(order: Order, case: Case, action: Action, actor: Actor, now: datetime, pol: Policy = POL, **params: Any) -> Case:
    return act(order, case.id, action, actor, now, pol, **params)


def refused(error: type[DomainError], rule: str, order: Order, case: Case, action: Action, actor: Actor, now: datetime,
            pol: Policy = POL, **params: Any) -> None:
    """The action is refused with ``rule`` and changes nothing at all."""
    before = snapshot(order)
    with pytest.raises(error) as exc:
        act(order, case.id, action, actor, now, pol, **params)
    assert exc.value.rule == rule, exc.value
    assert order == before, f"refused {action} changed the order or case"


def fire_due(order: Order, case: Case, action: Auto, now: datetime | None = None, pol: Policy = POL) -> bool:
    """Fire ``case``'s current timer for ``action`` at ``now`` (default: exactly when due)."""
    timer = next(d for d in case.timers() if d.action is action)
    return fire(order, case.id, action, timer.stage, now or timer.due_at, pol)


def settle_all(order: Order, case: Case, now: datetime) -> None:
    for refund in case.refunds(order):
        order.settle_refund(refund.key, now)


def kinds(order: Order, case: Case) -> list[str]:
    return [e.kind for e in case_events(order, case.id)]


# --- M1 -------------------------------------------------------------------------------------------------
def test_M1_new_case_waits_48h_for_the_merchant_with_reminders_12h_and_2h_before() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3)
    due = DAY_3 + timedelta(hours=48)
    assert case.status is CaseStatus.AWAITING_MERCHANT
    assert case.deadline is not None and (case.deadline.action, case.deadline.due_at, case.deadline.rule) == (
        Auto.AUTO_APPROVE, due, "M1")
    timers = case.timers()
    assert [(d.action, d.due_at) for d in timers] == [
        (Auto.REMIND_MERCHANT, due - timedelta(hours=12)),
        (Auto.REMIND_MERCHANT, due - timedelta(hours=2)),
        (Auto.AUTO_APPROVE, due),
    ]
    stage = case.stage
    assert not fire(order, case.id, Auto.REMIND_MERCHANT, stage, due - timedelta(hours=12, seconds=1), POL), "not yet due"
    assert fire(order, case.id, Auto.REMIND_MERCHANT, stage, due - timedelta(hours=12), POL)
    assert case.status is CaseStatus.AWAITING_MERCHANT
    reminder = case_events(order, case.id)[-1]
    assert reminder.kind == "remind_merchant" and reminder.actor is Actor.SYSTEM and reminder.rules == ("M1",)
    assert reminder.at == due - timedelta(hours=12) and reminder.data["deadline"] == due.isoformat()
    assert not fire(order, case.id, Auto.REMIND_MERCHANT, stage, due - timedelta(hours=11), POL), "each reminder once"
    assert fire(order, case.id, Auto.REMIND_MERCHANT, stage, due - timedelta(hours=2), POL)
    assert [d.action for d in case.timers()] == [Auto.AUTO_APPROVE]
    assert kinds(order, case).count("remind_merchant") == 2


def test_M1_reminders_stop_once_the_merchant_answers() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3)
    stage = case.stage
    do(order, case, Action.APPROVE, M, DAY_3 + hours(1))
    before = snapshot(order)
    assert not fire(order, case.id, Auto.REMIND_MERCHANT, stage, DAY_3 + hours(40), POL)
    assert not fire(order, case.id, Auto.AUTO_APPROVE, stage, DAY_3 + hours(50), POL)
    assert order == before


def test_M1_silence_approves_refund_only_and_issues_the_refund() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.NOT_AS_DESCRIBED, DAY_3, refund_fen=4000)
    due = DAY_3 + hours(48)
    assert not fire_due(order, case, Auto.AUTO_APPROVE, due - timedelta(seconds=1))
    assert fire_due(order, case, Auto.AUTO_APPROVE, due + hours(5))
    assert case.status is CaseStatus.REFUND_PENDING
    (refund,) = case.refunds(order)
    assert refund.amount_fen == 4000 and refund.created_at == due and refund.rule == "M1"
    event, issued = case_events(order, case.id)[-2:]  # the cause, then the refund it issued
    assert event.kind == "auto_approve" and event.actor is Actor.SYSTEM and event.at == due
    assert issued.kind == "refund_issued" and issued.at == due


@pytest.mark.parametrize(
    ("case_type", "reason", "at", "item_category"),
    [
        (CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3, "general"),
        (CaseType.EXCHANGE, Reason.WRONG_ITEM, DAY_3, "general"),
        (CaseType.REPAIR, Reason.QUALITY_PROBLEM, DAY_20, "electrical"),
    ],
)
def test_M1_silence_approves_the_return_of_a_return_exchange_or_repair(
    case_type: CaseType, reason: Reason, at: datetime, item_category: str
) -> None:
    order = delivered_order(items=[item("x", category=item_category)])
    case = new_case(order, case_type, reason, at)
    assert fire_due(order, case, Auto.AUTO_APPROVE)
    assert case.status is CaseStatus.AWAITING_RETURN_SHIPMENT
    assert case.return_shipping_payer is ShippingPayer.MERCHANT  # M3's proposal for the merchant's responsibility
    assert order.refunds == []


def test_M1_silence_approves_a_reship_the_merchant_must_ship() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RESHIP, Reason.MISSING_PARTS, DAY_3, items={"sku-b": 1})
    assert fire_due(order, case, Auto.AUTO_APPROVE)
    assert case.status is CaseStatus.AWAITING_REPLACEMENT_SHIPMENT
    assert case.deadline is not None and case.deadline.action is Auto.SHIP_TIMEOUT


def test_M1_stale_timer_of_an_earlier_stage_does_nothing() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10)
    old_stage = case.stage
    do(order, case, Action.REJECT, M, DAY_10 + hours(1), reason="Photos show no defect")
    do(order, case, Action.RESUBMIT, B, DAY_10 + hours(2), description="Better photos")
    assert case.status is CaseStatus.AWAITING_MERCHANT and case.stage != old_stage
    before = snapshot(order)
    # The first wait's deadline (DAY_10 + 48 h) is stale: the new wait ends at DAY_10 + 50 h.
    assert not fire(order, case.id, Auto.AUTO_APPROVE, old_stage, DAY_10 + hours(48), POL)
    assert not fire(order, case.id, Auto.AUTO_APPROVE, old_stage, DAY_10 + hours(60), POL)
    assert not fire(order, case.id, Auto.CLOSE_UNANSWERED, case.stage, DAY_20, POL), "no such timer in this stage"
    assert order == before
    assert fire(order, case.id, Auto.AUTO_APPROVE, case.stage, DAY_10 + hours(50), POL)
    assert not fire(order, case.id, Auto.AUTO_APPROVE, case.stage, DAY_10 + hours(51), POL), "applies once"
    assert len(case.refunds(order)) == 1


# --- M2 -------------------------------------------------------------------------------------------------
def test_M2_refund_only_of_an_unshipped_order_cannot_be_refused() -> None:
    order = paid_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.NO_REASON, PAID + hours(1))
    refused(RuleViolation, "M2", order, case, Action.REJECT, M, PAID + hours(2), reason="Already packed")


def test_M2_refund_requested_before_shipment_cannot_be_refused_by_shipping_meanwhile() -> None:
    order = paid_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.NO_REASON, PAID + hours(1))
    order.ship(M, "SF", "SF1", PAID + hours(2))
    refused(RuleViolation, "M2", order, case, Action.REJECT, M, PAID + hours(3), reason="Already shipped")


def test_M2_refund_asked_after_shipment_may_be_refused_with_a_reason() -> None:
    order = shipped_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.LATE_DELIVERY, SHIPPED + hours(1))
    do(order, case, Action.REJECT, M, SHIPPED + hours(2), reason="Tracking shows delivery tomorrow")
    assert case.status is CaseStatus.AWAITING_BUYER


def test_M2_valid_no_reason_return_cannot_be_refused() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3)
    refused(RuleViolation, "M2", order, case, Action.REJECT, M, DAY_3 + hours(1), reason="Changed mind is not a reason")
    do(order, case, Action.APPROVE, M, DAY_3 + hours(2))  # it may only inspect the goods on arrival (M6)
    assert case.status is CaseStatus.AWAITING_RETURN_SHIPMENT


def test_M2_refusal_needs_a_reason() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3)
    refused(InvalidInput, "M2", order, case, Action.REJECT, M, DAY_3 + hours(1), reason="   ")


def refused_case(at: datetime = DAY_10) -> tuple[Order, Case]:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, at)
    do(order, case, Action.REJECT, M, at + hours(1), reason="Scratches are normal wear")
    return order, case


def test_M2_after_refusal_the_buyer_has_7_days_to_answer() -> None:
    order, case = refused_case()
    assert case.status is CaseStatus.AWAITING_BUYER
    assert case.rejection_reason == "Scratches are normal wear"
    assert case.deadline is not None and case.deadline.action is Auto.CLOSE_UNANSWERED and case.deadline.rule == "M2"
    assert case.deadline.due_at == window_end(DAY_10 + hours(1), 7, "Asia/Shanghai") == t("2026-03-19T00:00:00+08:00")
    assert set(case.allowed_actions(B, order, policy())) == {Action.RESUBMIT, Action.ESCALATE, Action.ACCEPT_REJECTION,
                                                            Action.CANCEL}


def test_M2_buyer_modifies_and_resubmits_starting_a_new_merchant_wait() -> None:
    order, case = refused_case()
    now = DAY_10 + hours(30)
    do(order, case, Action.RESUBMIT, B, now, reason="not_as_described", refund_fen=9000, description="Listing said new")
    assert case.status is CaseStatus.AWAITING_MERCHANT
    assert case.reason is Reason.NOT_AS_DESCRIBED and case.refund_fen == 9000 and case.rejection_reason is None
    assert case.deadline is not None and case.deadline.due_at == now + hours(48)  # a fresh M1 wait
    assert case_events(order, case.id)[-1].rules == ("M2", "M1")


def test_M2_refused_resubmission_changes_nothing() -> None:
    order, case = refused_case()
    refused(RuleViolation, "E10", order, case, Action.RESUBMIT, B, DAY_10 + hours(2), reason="not_as_described",
            refund_fen=20801)
    refused(InvalidInput, "S4", order, case, Action.RESUBMIT, B, DAY_10 + hours(2), reason="wrong_item",
            description="x" * 2001)
    refused(RuleViolation, "M2", order, case, Action.RESUBMIT, B, DAY_10 + hours(2), reason="no_reason")
    assert case.reason is Reason.QUALITY_PROBLEM


def test_M2_buyer_escalates_to_the_platform() -> None:
    order, case = refused_case()
    refused(InvalidInput, "P1", order, case, Action.ESCALATE, B, DAY_10 + hours(2), reason="")
    do(order, case, Action.ESCALATE, B, DAY_10 + hours(2), reason="The defect is visible in the photos")
    assert case.status is CaseStatus.PLATFORM_REVIEW
    assert case_events(order, case.id)[-1].rules == ("P1", "M2")


def test_M2_buyer_accepts_the_refusal() -> None:
    order, case = refused_case()
    do(order, case, Action.ACCEPT_REJECTION, B, DAY_10 + hours(2))
    assert case.status is CaseStatus.CLOSED and case.close_reason is CloseReason.REJECTED
    assert order.buyer_cancellations == 0


def test_M2_silence_closes_the_case() -> None:
    order, case = refused_case()
    assert not fire_due(order, case, Auto.CLOSE_UNANSWERED, t("2026-03-18T23:59:59+08:00"))
    assert fire_due(order, case, Auto.CLOSE_UNANSWERED, DAY_20)
    assert case.status is CaseStatus.CLOSED and case.close_reason is CloseReason.REJECTED
    assert case.closed_at == t("2026-03-19T00:00:00+08:00")
    assert order.buyer_cancellations == 0
    refused(StateConflict, "C1", order, case, Action.RESUBMIT, B, DAY_20)


def test_M2_resubmit_and_accept_are_only_for_a_refusal() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10)
    do(order, case, Action.OFFER_PARTIAL_REFUND, M, DAY_10 + hours(1), refund_fen=3000)
    refused(StateConflict, "M2", order, case, Action.RESUBMIT, B, DAY_10 + hours(2))
    refused(StateConflict, "M2", order, case, Action.ACCEPT_REJECTION, B, DAY_10 + hours(2))


# --- M3 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reason", "insured", "payer"),
    [
        (Reason.NO_REASON, False, ShippingPayer.BUYER),
        (Reason.NO_REASON, True, ShippingPayer.INSURER),
        (Reason.QUALITY_PROBLEM, False, ShippingPayer.MERCHANT),
        (Reason.QUALITY_PROBLEM, True, ShippingPayer.MERCHANT),
        (Reason.WRONG_ITEM, False, ShippingPayer.MERCHANT),
        (Reason.DAMAGED_IN_TRANSIT, False, ShippingPayer.MERCHANT),
    ],
)
def test_M3_system_proposes_who_pays_return_shipping(reason: Reason, insured: bool, payer: ShippingPayer) -> None:
    order = delivered_order(insured=insured)
    case = approved_return(order, reason)
    assert case.return_shipping_proposed is payer and case.return_shipping_payer is payer
    assert not case.return_shipping_disputed
    approval = case_events(order, case.id)[-1]
    assert approval.data["proposed_payer"] == str(payer) and approval.data["shipping_disputed"] is False
    assert "M3" in approval.rules


def test_M3_merchant_declining_where_the_rule_says_merchant_lets_the_buyer_escalate() -> None:
    order = delivered_order()
    case = approved_return(order, Reason.QUALITY_PROBLEM, return_shipping_payer="buyer")
    assert case.return_shipping_proposed is ShippingPayer.MERCHANT
    assert case.return_shipping_payer is ShippingPayer.BUYER  # its answer is recorded
    assert case.return_shipping_disputed
    assert case_events(order, case.id)[-1].data["shipping_disputed"] is True
    do(order, case, Action.ESCALATE, B, DAY_3 + hours(5), reason="The shop must pay the return of a faulty item")
    assert case.status is CaseStatus.PLATFORM_REVIEW
    assert case_events(order, case.id)[-1].rules == ("P1", "M3")


def test_M3_no_escalation_without_a_disagreement() -> None:
    order = delivered_order()
    case = approved_return(order, Reason.QUALITY_PROBLEM)
    refused(RuleViolation, "P1", order, case, Action.ESCALATE, B, DAY_3 + hours(5), reason="I want the platform")


def test_M3_return_shipping_payer_is_validated() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3)
    refused(InvalidInput, "M3", order, case, Action.APPROVE, M, DAY_3 + hours(1), return_shipping_payer="carrier")
    other = delivered_order("o2")
    refund_case = new_case(other, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_3)
    refused(InvalidInput, "M3", other, refund_case, Action.APPROVE, M, DAY_3 + hours(1), return_shipping_payer="merchant")


def test_M3_merchant_paid_return_shipping_is_reimbursed_separately_up_to_the_cap() -> None:
    order = delivered_order()
    case = approved_return(order, Reason.QUALITY_PROBLEM)
    ship_at = DAY_3 + hours(6)
    refused(InvalidInput, "T1", order, case, Action.SHIP_RETURN, B, ship_at, carrier="YTO", tracking_no="YT9",
            shipping_fee_fen=15.5)
    do(order, case, Action.SHIP_RETURN, B, ship_at, carrier="YTO", tracking_no="YT9", shipping_fee_fen=1500)
    do(order, case, Action.CONFIRM_RETURN, M, ship_at + hours(30))
    (refund,) = case.refunds(order)
    assert refund.return_shipping_fen == 1500
    assert refund.refund_fen == PAID_FEN, "the goods refund (+ order shipping) is separate from return shipping"
    assert refund.amount_fen == PAID_FEN + 1500
    assert order.refunded_fen == order.paid_fen, "return shipping does not count against what the order paid"


def test_M3_a_cost_above_the_cap_is_accepted_and_reimbursed_up_to_the_cap_saying_so() -> None:
    order = delivered_order()
    case = approved_return(order, Reason.QUALITY_PROBLEM)
    ship_at = DAY_3 + hours(6)
    do(order, case, Action.SHIP_RETURN, B, ship_at, carrier="YTO", tracking_no="YT9", shipping_fee_fen=2600)
    assert (case.return_shipping_fee_fen, case.return_shipping_reimbursable) == (2600, 2000)
    event = [e for e in case_events(order, case.id) if e.kind == "ship_return"][-1]
    assert "M3" in event.rules
    assert {k: event.data[k] for k in ("shipping_fee_fen", "reimbursable_fen", "cap_fen", "capped")} == {
        "shipping_fee_fen": 2600, "reimbursable_fen": 2000, "cap_fen": 2000, "capped": True}
    do(order, case, Action.CONFIRM_RETURN, M, ship_at + hours(30))
    (refund,) = case.refunds(order)
    assert refund.return_shipping_fen == 2000, "min(stated cost, cap), never more"
    assert refund.amount_fen == PAID_FEN + 2000


def test_M3_the_cap_is_a_policy_parameter() -> None:
    pol = policy(return_shipping_cap_fen=3000)
    order = delivered_order()
    case = approved_return(order, Reason.WRONG_ITEM, pol=pol)
    do(order, case, Action.SHIP_RETURN, B, DAY_3 + hours(6), pol, carrier="YTO", tracking_no="YT9", shipping_fee_fen=2500)
    assert case.return_shipping_fee_fen == 2500


def test_M3_buyer_paid_return_shipping_is_not_reimbursed() -> None:
    order = delivered_order()
    case = approved_return(order, Reason.NO_REASON)
    do(order, case, Action.SHIP_RETURN, B, DAY_3 + hours(6), carrier="YTO", tracking_no="YT9", shipping_fee_fen=2600)
    do(order, case, Action.CONFIRM_RETURN, M, DAY_3 + hours(40))
    (refund,) = case.refunds(order)
    assert refund.return_shipping_fen == 0 and refund.amount_fen == PAID_FEN - SHIPPING_FEN


# --- M4 -------------------------------------------------------------------------------------------------
def test_M4_merchant_offers_an_exchange_and_the_buyer_accepts() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3)
    do(order, case, Action.OFFER_EXCHANGE, M, DAY_3 + hours(1))
    assert case.status is CaseStatus.AWAITING_BUYER and case.offer is not None and case.offer.kind == "exchange"
    do(order, case, Action.ACCEPT_OFFER, B, DAY_3 + hours(3))
    assert case.type is CaseType.EXCHANGE and case.refund_fen is None
    assert case.status is CaseStatus.AWAITING_RETURN_SHIPMENT
    assert case.return_shipping_payer is ShippingPayer.MERCHANT
    # The exchange runs to its end (M5 → M6 → M7): return shipping reimbursed once the replacement ships.
    do(order, case, Action.SHIP_RETURN, B, DAY_3 + hours(5), carrier="YTO", tracking_no="YT1", shipping_fee_fen=1000)
    do(order, case, Action.MARK_RETURN_DELIVERED, P, DAY_3 + hours(30))
    assert case.status is CaseStatus.AWAITING_REPLACEMENT_SHIPMENT
    do(order, case, Action.SHIP_REPLACEMENT, M, DAY_3 + hours(40), carrier="SF", tracking_no="SF2")
    (reimbursement,) = case.refunds(order)
    assert reimbursement.kind is RefundKind.RETURN_SHIPPING and reimbursement.amount_fen == 1000
    assert reimbursement.refund_fen == 0 and order.refunded_fen == 0
    do(order, case, Action.CONFIRM_RECEIVED, B, DAY_3 + hours(70))
    assert case.close_reason is CloseReason.EXCHANGED


def test_M4_buyer_declines_the_exchange_and_the_return_goes_on_with_the_merchant_paying_shipping() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.WRONG_ITEM, DAY_3)
    do(order, case, Action.OFFER_EXCHANGE, M, DAY_3 + hours(1))
    do(order, case, Action.DECLINE_OFFER, B, DAY_3 + hours(3))
    assert case.type is CaseType.RETURN_REFUND
    assert case.status is CaseStatus.AWAITING_RETURN_SHIPMENT
    assert case.return_shipping_payer is ShippingPayer.MERCHANT and case.offer is None
    assert case_events(order, case.id)[-1].rules == ("M4", "M3")


def test_M4_declined_exchange_on_a_refund_only_case_goes_back_to_the_merchants_clock() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10)
    do(order, case, Action.OFFER_EXCHANGE, M, DAY_10 + hours(5))
    do(order, case, Action.DECLINE_OFFER, B, DAY_10 + hours(6))
    assert case.type is CaseType.REFUND_ONLY and case.status is CaseStatus.AWAITING_MERCHANT
    assert case.due_at == DAY_10 + hours(48)


def test_M4_exchange_first_only_for_quality_problems_and_wrong_items() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3)
    refused(RuleViolation, "M4", order, case, Action.OFFER_EXCHANGE, M, DAY_3 + hours(1))
    other = delivered_order("o2")
    case2 = new_case(other, CaseType.RETURN_REFUND, Reason.NOT_AS_DESCRIBED, DAY_3)
    refused(RuleViolation, "M4", other, case2, Action.OFFER_EXCHANGE, M, DAY_3 + hours(1))


def test_M4_unanswered_exchange_offer_lets_the_return_go_on() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3)
    do(order, case, Action.OFFER_EXCHANGE, M, DAY_3 + hours(1))
    assert case.deadline is not None and case.deadline.action is Auto.LAPSE_OFFER
    assert fire_due(order, case, Auto.LAPSE_OFFER)
    assert case.status is CaseStatus.AWAITING_RETURN_SHIPMENT and case.return_shipping_payer is ShippingPayer.MERCHANT


# --- M5 -------------------------------------------------------------------------------------------------
def test_M5_buyer_ships_the_return_within_7_days_with_carrier_and_tracking() -> None:
    order = delivered_order()
    approved_at = DAY_3 + hours(2)
    case = approved_return(order, Reason.QUALITY_PROBLEM, approved_at=approved_at)
    assert case.deadline is not None and case.deadline.action is Auto.CLOSE_BUYER_OVERDUE and case.deadline.rule == "M5"
    assert case.deadline.due_at == window_end(approved_at, 7, "Asia/Shanghai") == t("2026-03-12T00:00:00+08:00")
    refused(InvalidInput, "M5", order, case, Action.SHIP_RETURN, B, DAY_3 + hours(5), carrier="YTO", tracking_no=" ")
    refused(InvalidInput, "M5", order, case, Action.SHIP_RETURN, B, DAY_3 + hours(5), tracking_no="YT1")
    do(order, case, Action.SHIP_RETURN, B, DAY_3 + hours(5), carrier="YTO", tracking_no="YT1")
    assert case.status is CaseStatus.RETURN_IN_TRANSIT
    assert (case.return_carrier, case.return_tracking_no) == ("YTO", "YT1")


def test_M5_buyer_overdue_closes_the_case_and_is_not_an_E8_cancellation() -> None:
    order = delivered_order()
    case = approved_return(order, Reason.NO_REASON)
    assert fire_due(order, case, Auto.CLOSE_BUYER_OVERDUE, DAY_20)
    assert case.status is CaseStatus.CLOSED and case.close_reason is CloseReason.BUYER_OVERDUE
    assert case.closed_at == t("2026-03-12T00:00:00+08:00")
    assert order.buyer_cancellations == 0
    answer = evaluate(order, actor=B, now=DAY_10, policy=POL, categories={})
    assert answer.cancellations_left == 3
    assert answer.option(CaseType.RETURN_REFUND).allowed, "the buyer may still open a case (E5 window)"


def test_M5_stale_overdue_timer_after_shipping_does_nothing() -> None:
    order = delivered_order()
    case = approved_return(order, Reason.QUALITY_PROBLEM)
    stage = case.stage
    do(order, case, Action.SHIP_RETURN, B, DAY_3 + hours(5), carrier="YTO", tracking_no="YT1")
    before = snapshot(order)
    assert not fire(order, case.id, Auto.CLOSE_BUYER_OVERDUE, stage, DAY_20, POL)
    assert order == before


# --- M6 -------------------------------------------------------------------------------------------------
def shipped_return(reason: Reason = Reason.QUALITY_PROBLEM, case_type: CaseType = CaseType.RETURN_REFUND,
                   pol: Policy = POL) -> tuple[Order, Case, datetime]:
    order = delivered_order()
    case = approved_return(order, reason, case_type=case_type, pol=pol)
    ship_at = DAY_3 + hours(6)
    do(order, case, Action.SHIP_RETURN, B, ship_at, pol, carrier="YTO", tracking_no="YT1")
    return order, case, ship_at


def test_M6_with_a_delivery_record_the_merchant_has_48h_then_the_system_refunds() -> None:
    order, case, _ = shipped_return()
    delivered = DAY_3 + hours(30)
    do(order, case, Action.MARK_RETURN_DELIVERED, Actor.SYSTEM, delivered + hours(1), at=delivered)
    assert case.status is CaseStatus.AWAITING_MERCHANT_RECEIPT and case.return_delivered_at == delivered
    assert case.deadline is not None and case.deadline.action is Auto.RETURN_TIMEOUT and case.deadline.rule == "M6"
    assert case.deadline.due_at == delivered + timedelta(hours=48)
    assert not fire_due(order, case, Auto.RETURN_TIMEOUT, delivered + timedelta(hours=48, seconds=-1))
    assert fire_due(order, case, Auto.RETURN_TIMEOUT, delivered + hours(60))
    assert case.status is CaseStatus.REFUND_PENDING
    (refund,) = case.refunds(order)
    assert refund.amount_fen == PAID_FEN and refund.rule == "M6" and refund.created_at == delivered + hours(48)


def test_M6_without_a_delivery_record_the_system_refunds_10_days_after_the_buyer_shipped() -> None:
    order, case, ship_at = shipped_return()
    assert case.deadline is not None and case.deadline.action is Auto.RETURN_TIMEOUT
    assert case.deadline.due_at == window_end(ship_at, 10, "Asia/Shanghai") == t("2026-03-15T00:00:00+08:00")
    assert fire_due(order, case, Auto.RETURN_TIMEOUT)
    assert case.status is CaseStatus.REFUND_PENDING and len(case.refunds(order)) == 1


def test_M6_merchant_confirms_the_return_and_refunds() -> None:
    order, case, ship_at = shipped_return()
    do(order, case, Action.MARK_RETURN_DELIVERED, M, ship_at + hours(20))
    stage = case.stage
    do(order, case, Action.CONFIRM_RETURN, M, ship_at + hours(22))
    assert case.status is CaseStatus.REFUND_PENDING
    before = snapshot(order)
    assert not fire(order, case.id, Auto.RETURN_TIMEOUT, stage, ship_at + hours(80), POL), "stale timer"
    assert order == before


def test_M6_rejecting_the_returned_goods_sends_the_case_to_the_platform() -> None:
    order, case, ship_at = shipped_return()
    do(order, case, Action.MARK_RETURN_DELIVERED, M, ship_at + hours(20))
    refused(InvalidInput, "M6", order, case, Action.REJECT_RETURN, M, ship_at + hours(21), reason="")
    do(order, case, Action.REJECT_RETURN, M, ship_at + hours(21), reason="Returned item is not the one sold")
    assert case.status is CaseStatus.PLATFORM_REVIEW
    assert case_events(order, case.id)[-1].rules == ("M6", "P1")
    assert order.refunds == []


def test_M6_law_bound_holds_for_the_configured_policy() -> None:
    # Within 7 days of receiving the goods (CRPL art. 25), whatever the operator configured.
    pol = policy(merchant_confirm_hours=168)
    order, case, ship_at = shipped_return(pol=pol)
    received = ship_at + hours(24)
    do(order, case, Action.MARK_RETURN_DELIVERED, Actor.SYSTEM, received, pol)
    assert case.due_at is not None and case.due_at - received <= timedelta(days=7)
    with pytest.raises(Exception, match="7 days"):
        policy(merchant_confirm_hours=169)


# --- M7 -------------------------------------------------------------------------------------------------
def test_M7_reship_not_shipped_within_48h_turns_into_a_refund_of_the_goods_concerned() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RESHIP, Reason.MISSING_PARTS, DAY_3, items={"sku-b": 1})
    approved_at = DAY_3 + hours(1)
    do(order, case, Action.APPROVE, M, approved_at)
    assert case.deadline is not None and case.deadline.action is Auto.SHIP_TIMEOUT and case.deadline.rule == "M7"
    assert case.deadline.due_at == approved_at + hours(48)
    assert fire_due(order, case, Auto.SHIP_TIMEOUT)
    assert case.status is CaseStatus.REFUND_PENDING
    (refund,) = case.refunds(order)
    assert refund.goods == {"sku-b": 5000} and refund.shipping_fen == 0 and refund.rule == "M7"
    settle_all(order, case, approved_at + hours(50))
    assert case.close_reason is CloseReason.REFUNDED


def test_M7_exchange_ship_clock_starts_when_the_return_is_received() -> None:
    order, case, ship_at = shipped_return(Reason.WRONG_ITEM, CaseType.EXCHANGE)
    received = ship_at + hours(26)
    do(order, case, Action.MARK_RETURN_DELIVERED, P, received + hours(2), at=received)
    assert case.status is CaseStatus.AWAITING_REPLACEMENT_SHIPMENT
    assert case.deadline is not None and case.deadline.due_at == received + hours(48)
    assert fire_due(order, case, Auto.SHIP_TIMEOUT)
    (refund,) = case.refunds(order)
    assert refund.rule == "M7" and refund.goods_fen == 20000 and refund.shipping_fen == 0


def test_M7_replacement_closes_when_the_buyer_confirms_receipt() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RESHIP, Reason.NOT_RECEIVED, DAY_3, items={"sku-a": 1})
    do(order, case, Action.APPROVE, M, DAY_3 + hours(1))
    refused(InvalidInput, "M7", order, case, Action.SHIP_REPLACEMENT, M, DAY_3 + hours(2), carrier="SF", tracking_no="")
    do(order, case, Action.SHIP_REPLACEMENT, M, DAY_3 + hours(2), carrier="SF", tracking_no="SF7")
    assert case.status is CaseStatus.REPLACEMENT_IN_TRANSIT
    do(order, case, Action.CONFIRM_RECEIVED, B, DAY_3 + hours(30))
    assert case.status is CaseStatus.CLOSED and case.close_reason is CloseReason.RESHIPPED
    assert order.refunds == []


def test_M7_without_confirmation_the_case_closes_buyer_confirm_days_after_delivery() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RESHIP, Reason.MISSING_PARTS, DAY_3, items={"sku-a": 1})
    do(order, case, Action.APPROVE, M, DAY_3 + hours(1))
    do(order, case, Action.SHIP_REPLACEMENT, M, DAY_3 + hours(2), carrier="SF", tracking_no="SF7")
    delivered = t("2026-03-05T15:00:00+08:00")
    do(order, case, Action.MARK_REPLACEMENT_DELIVERED, Actor.SYSTEM, delivered + hours(1), at=delivered)
    assert case.deadline is not None and case.deadline.action is Auto.AUTO_CONFIRM_RECEIVED
    assert case.deadline.due_at == window_end(delivered, 7, "Asia/Shanghai") == t("2026-03-13T00:00:00+08:00")
    assert fire_due(order, case, Auto.AUTO_CONFIRM_RECEIVED)
    assert case.close_reason is CloseReason.RESHIPPED and case.closed_at == t("2026-03-13T00:00:00+08:00")
    assert case_events(order, case.id)[-1].actor is Actor.SYSTEM


def test_M7_repair_under_warranty_runs_return_then_repaired_item() -> None:
    order = delivered_order(items=[item("fridge", category="electrical", unit_price_fen=300000)])
    case = new_case(order, CaseType.REPAIR, Reason.QUALITY_PROBLEM, DAY_20)
    do(order, case, Action.APPROVE, M, DAY_20 + hours(1))
    do(order, case, Action.SHIP_RETURN, B, DAY_20 + hours(3), carrier="Deppon", tracking_no="DP1")
    do(order, case, Action.CONFIRM_RETURN, M, DAY_20 + hours(50))
    assert case.status is CaseStatus.AWAITING_REPLACEMENT_SHIPMENT
    do(order, case, Action.SHIP_REPLACEMENT, M, DAY_20 + hours(90), carrier="Deppon", tracking_no="DP2")
    do(order, case, Action.CONFIRM_RECEIVED, B, DAY_20 + hours(120))
    assert case.close_reason is CloseReason.REPAIRED


# --- M8 -------------------------------------------------------------------------------------------------
def test_M8_buyer_accepts_a_partial_refund_and_keeps_the_goods() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.NOT_AS_DESCRIBED, DAY_3)
    refused(InvalidInput, "T1", order, case, Action.OFFER_PARTIAL_REFUND, M, DAY_3 + hours(1), refund_fen=0)
    do(order, case, Action.OFFER_PARTIAL_REFUND, M, DAY_3 + hours(1), refund_fen=3000)
    assert case.status is CaseStatus.AWAITING_BUYER and case.offer is not None and case.offer.refund_fen == 3000
    do(order, case, Action.ACCEPT_OFFER, B, DAY_3 + hours(4))
    assert case.status is CaseStatus.REFUND_PENDING and case.refund_fen == 3000
    (refund,) = case.refunds(order)
    assert refund.amount_fen == 3000 and refund.rule == "M8"
    assert case.return_shipped_at is None, "the buyer keeps the goods"
    settle_all(order, case, DAY_3 + hours(5))
    assert case.close_reason is CloseReason.REFUNDED


def test_M8_declining_resumes_the_merchants_clock_not_a_fresh_one() -> None:
    order = delivered_order()
    opened = DAY_10
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, opened)
    original_due = opened + hours(48)
    do(order, case, Action.OFFER_PARTIAL_REFUND, M, opened + hours(10), refund_fen=5000)
    assert case.deadline is not None and case.deadline.action is Auto.LAPSE_OFFER
    declined = opened + hours(20)
    do(order, case, Action.DECLINE_OFFER, B, declined)
    assert case.status is CaseStatus.AWAITING_MERCHANT and case.offer is None
    assert case.due_at == original_due, "the merchant's clock goes on where it was"
    assert case.due_at != declined + hours(48)
    assert case.reminders == (original_due - hours(12), original_due - hours(2))
    assert fire_due(order, case, Auto.AUTO_APPROVE)
    assert case.refunds(order)[0].amount_fen == 20000, "the request, not the declined offer, is approved"


def test_M8_offer_cannot_exceed_what_is_left() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10, items={"sku-b": 2})
    refused(RuleViolation, "E10", order, case, Action.OFFER_PARTIAL_REFUND, M, DAY_10 + hours(1), refund_fen=10001)


def test_M8_unanswered_offer_lapses_back_to_the_merchant() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10)
    do(order, case, Action.OFFER_PARTIAL_REFUND, M, DAY_10 + hours(1), refund_fen=5000)
    assert fire_due(order, case, Auto.LAPSE_OFFER)
    assert case.status is CaseStatus.AWAITING_MERCHANT and case.offer is None
    # The merchant's 48 h ran out while the offer was open: M1 is due at the lapse, not back-dated before it.
    lapse_at = window_end(DAY_10 + hours(1), 7, POL.timezone)
    assert case.due_at == max(DAY_10 + hours(48), lapse_at) == lapse_at


# --- C1 -------------------------------------------------------------------------------------------------
def test_C1_buyer_cancels_an_open_case_and_E8_counts_it() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3)
    do(order, case, Action.CANCEL, B, DAY_3 + hours(1))
    assert case.status is CaseStatus.CLOSED and case.close_reason is CloseReason.CANCELLED
    assert order.buyer_cancellations == 1
    event = case_events(order, case.id)[-1]
    assert event.rules == ("C1", "E8") and event.data["cancellations_left"] == 2


def test_C1_cancel_allowed_while_nothing_has_moved() -> None:
    order = delivered_order()
    case = approved_return(order, Reason.QUALITY_PROBLEM)
    do(order, case, Action.CANCEL, B, DAY_3 + hours(5))  # approved, but not shipped back yet
    assert case.close_reason is CloseReason.CANCELLED


def test_C1_cancel_refused_after_a_refund_was_issued() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10)
    do(order, case, Action.APPROVE, M, DAY_10 + hours(1))
    refused(StateConflict, "C1", order, case, Action.CANCEL, B, DAY_10 + hours(2))
    settle_all(order, case, DAY_10 + hours(3))
    refused(StateConflict, "C1", order, case, Action.CANCEL, B, DAY_10 + hours(4))
    assert order.buyer_cancellations == 0


def test_C1_cancel_refused_after_the_return_was_shipped() -> None:
    order, case, ship_at = shipped_return(Reason.WRONG_ITEM, CaseType.EXCHANGE)
    refused(StateConflict, "C1", order, case, Action.CANCEL, B, ship_at + hours(1))
    do(order, case, Action.MARK_RETURN_DELIVERED, M, ship_at + hours(20))
    assert case.status is CaseStatus.AWAITING_REPLACEMENT_SHIPMENT
    refused(StateConflict, "C1", order, case, Action.CANCEL, B, ship_at + hours(21))


def test_C1_cancel_refused_after_the_replacement_was_shipped() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RESHIP, Reason.MISSING_PARTS, DAY_3, items={"sku-a": 1})
    do(order, case, Action.APPROVE, M, DAY_3 + hours(1))
    do(order, case, Action.SHIP_REPLACEMENT, M, DAY_3 + hours(2), carrier="SF", tracking_no="SF7")
    refused(StateConflict, "C1", order, case, Action.CANCEL, B, DAY_3 + hours(3))


# --- F1 -------------------------------------------------------------------------------------------------
def test_F1_refund_carries_a_key_derived_from_the_case_and_closes_only_when_settled() -> None:
    order = shipped_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.LATE_DELIVERY, SHIPPED + hours(1))
    do(order, case, Action.APPROVE, M, SHIPPED + hours(2))
    (refund,) = case.refunds(order)
    assert refund.key == f"case:{case.id}:refund:1" and case.id in refund.key
    assert refund.amount_fen == PAID_FEN and refund.status is RefundStatus.PENDING
    assert case.status is CaseStatus.REFUND_PENDING and case.close_reason is None, "not closed before the money moved"
    assert order.open_case() is case
    assert order.settle_refund(refund.key, SHIPPED + hours(3)) is True
    assert case.status is CaseStatus.CLOSED and case.close_reason is CloseReason.REFUNDED
    assert case.closed_at == SHIPPED + hours(3)
    closed = case_events(order, case.id)[-1]
    assert closed.kind == "closed" and closed.rules == ("F1",) and closed.actor is Actor.SYSTEM


def test_F1_a_duplicate_settlement_returns_false_and_pays_nothing_twice() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10, refund_fen=4200)
    do(order, case, Action.APPROVE, M, DAY_10 + hours(1))
    (refund,) = case.refunds(order)
    assert order.settle_refund(refund.key, DAY_10 + hours(2)) is True
    before = snapshot(order)
    assert order.settle_refund(refund.key, DAY_10 + hours(3)) is False
    assert order == before
    assert order.refunded_fen == 4200 and len(order.refunds) == 1
    assert refund.settled_at == DAY_10 + hours(2)
    with pytest.raises(InvalidInput) as exc:
        order.settle_refund("case:unknown:refund:1", DAY_10 + hours(3))
    assert exc.value.rule == "F1"


def test_F1_a_retry_never_issues_the_same_refund_twice() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10, refund_fen=4200)
    stage = case.stage
    do(order, case, Action.APPROVE, M, DAY_10 + hours(1))
    refused(StateConflict, "F1", order, case, Action.APPROVE, M, DAY_10 + hours(1))  # the same request again
    assert not fire(order, case.id, Auto.AUTO_APPROVE, stage, DAY_10 + hours(49), POL)  # the old timer, late
    (refund,) = case.refunds(order)
    before = snapshot(order)
    with pytest.raises(StateConflict) as exc:
        order.issue_refund(key=refund.key, kind=refund.kind, payer=refund.payer, rule="M1", now=DAY_10 + hours(2),
                           actor=Actor.SYSTEM, goods={"sku-a": 1}, case_id=case.id)
    assert exc.value.rule == "F1"
    assert order == before
    assert order.refunded_fen == 4200


def test_F1_an_unconfirmed_refund_stays_visible_until_it_succeeds() -> None:
    order = delivered_order()
    case = approved_return(order, Reason.QUALITY_PROBLEM)
    do(order, case, Action.SHIP_RETURN, B, DAY_3 + hours(6), carrier="YTO", tracking_no="YT1", shipping_fee_fen=900)
    do(order, case, Action.CONFIRM_RETURN, M, DAY_3 + hours(40))
    (refund,) = case.refunds(order)
    for _ in range(3):  # nothing else happens meanwhile: the refund is still owed, the case still open
        assert refund.status is RefundStatus.PENDING and case.status is CaseStatus.REFUND_PENDING
        assert not case.timers() and case.allowed_actions(B, order, policy()) == []
    assert order.settle_refund(refund.key, DAY_10)
    assert refund.status is RefundStatus.SETTLED and case.close_reason is CloseReason.REFUNDED
    assert refund.amount_fen == PAID_FEN + 900


def test_F1_every_event_of_a_case_has_an_actor_and_rule_ids() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3)
    do(order, case, Action.OFFER_EXCHANGE, M, DAY_3 + hours(1))
    do(order, case, Action.DECLINE_OFFER, B, DAY_3 + hours(2))
    do(order, case, Action.SHIP_RETURN, B, DAY_3 + hours(3), carrier="YTO", tracking_no="YT1", shipping_fee_fen=800)
    assert fire_due(order, case, Auto.RETURN_TIMEOUT)
    settle_all(order, case, DAY_20)
    events = case_events(order, case.id)
    assert [e.kind for e in events] == [
        "opened", "offer_exchange", "decline_offer", "ship_return", "return_timeout", "refund_issued",
        "refund_settled", "closed",
    ]
    for event in events:
        assert isinstance(event.actor, Actor) and event.rules and event.at.tzinfo is not None
    assert "F1" in events[5].rules and "E10" in events[5].rules
    assert case.close_reason is CloseReason.REFUNDED
