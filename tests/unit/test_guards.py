"""DESIGN "Guards": one guard, two uses — what ``allowed_actions`` lists is exactly what the action accepts.

Each test builds a state in which the old hand-restated ``allowed_actions`` drifted from the handlers' checks, and
shows that the listed actions succeed and the others are refused with the guard's rule id.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from factories import DAY_3, DAY_10, PAID, approved_return, delivered_order, group_with_orders, hours, new_case, paid_order, policy, snapshot

from aftersales.domain import complaints as dc
from aftersales.domain import deposits as dd
from aftersales.domain.case_guards import GUARDS
from aftersales.domain.cases import TRANSITIONS, Action, Case, CaseStatus, CloseReason, act
from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.errors import DomainError, NotPermitted, RuleViolation, StateConflict
from aftersales.domain.events import Actor
from aftersales.domain.groups import GroupStatus
from aftersales.domain.orders import Order, OrderAction

B, M, P, SYS = Actor.BUYER, Actor.MERCHANT, Actor.PLATFORM, Actor.SYSTEM
POL = policy()


def allowed(case: Case, order: Order, actor: Actor) -> set[Action]:
    return set(case.allowed_actions(actor, order, POL))


def refused(order: Order, case: Case, action: Action, actor: Actor, now: datetime, rule: str,
            kind: type[DomainError] = StateConflict, **params: Any) -> None:
    before = snapshot(order)
    with pytest.raises(kind) as exc:
        act(order, case.id, action, actor, now, POL, **params)
    assert exc.value.rule == rule, exc.value
    assert order == before, "a refusal changes nothing"


def test_every_guarded_action_is_in_the_transition_table() -> None:
    in_table = {a for row in TRANSITIONS.values() for a in row}
    assert set(GUARDS) <= in_table


# --- the drift cases ---------------------------------------------------------------------------------------
def test_M8_after_refusal_offer_actions_are_not_offered() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3)
    act(order, case.id, Action.REJECT, M, DAY_3 + hours(1), POL, reason="Scratches are normal wear")
    assert allowed(case, order, B) == {Action.RESUBMIT, Action.ESCALATE, Action.ACCEPT_REJECTION, Action.CANCEL}
    refused(order, case, Action.DECLINE_OFFER, B, DAY_3 + hours(2), "M8")


def test_M2_accept_offer_after_a_refusal_accepts_the_refusal() -> None:
    """API.md's buyer action for accepting is ``accept_offer``: with no offer but a refusal, it accepts the refusal
    (M2) exactly as ``accept_rejection`` does, and the record says which act it was."""
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3)
    act(order, case.id, Action.REJECT, M, DAY_3 + hours(1), POL, reason="Scratches are normal wear")
    act(order, case.id, Action.ACCEPT_OFFER, B, DAY_3 + hours(2), POL)
    assert (case.status, case.close_reason) == (CaseStatus.CLOSED, CloseReason.REJECTED)
    assert order.pending_events[-1].kind == "accept_rejection"


def test_M2_after_partial_offer_accept_rejection_not_offered() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_3)
    act(order, case.id, Action.OFFER_PARTIAL_REFUND, M, DAY_3 + hours(1), POL, refund_fen=3000)
    assert allowed(case, order, B) == {Action.ACCEPT_OFFER, Action.DECLINE_OFFER, Action.CANCEL}
    refused(order, case, Action.ACCEPT_REJECTION, B, DAY_3 + hours(2), "M2")
    refused(order, case, Action.RESUBMIT, B, DAY_3 + hours(2), "M2", description="more")
    refused(order, case, Action.ESCALATE, B, DAY_3 + hours(2), "M2", reason="help")
    act(order, case.id, Action.ACCEPT_OFFER, B, DAY_3 + hours(2), POL)
    assert case.refunded_fen(order) == 3000


def test_M2_a_refund_asked_before_shipment_is_not_offered_for_refusal() -> None:
    order = paid_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.NO_REASON, PAID + hours(1))
    assert Action.REJECT not in allowed(case, order, M)
    assert allowed(case, order, M) == {Action.APPROVE, Action.OFFER_PARTIAL_REFUND}
    refused(order, case, Action.REJECT, M, PAID + hours(2), "M2", RuleViolation, reason="no")


def test_M2_a_valid_no_reason_return_is_not_offered_for_refusal() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3)
    assert allowed(case, order, M) == {Action.APPROVE, Action.OFFER_PARTIAL_REFUND}
    refused(order, case, Action.REJECT, M, DAY_3 + hours(1), "M2", RuleViolation, reason="no")


def test_M4_an_exchange_is_offered_only_for_quality_or_wrong_items() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.NOT_AS_DESCRIBED, DAY_3)
    assert Action.OFFER_EXCHANGE not in allowed(case, order, M)
    refused(order, case, Action.OFFER_EXCHANGE, M, DAY_3 + hours(1), "M4", RuleViolation)
    other = delivered_order("o2")
    good = new_case(other, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_3)
    assert Action.OFFER_EXCHANGE in allowed(good, other, M)


def test_C1_cancel_is_not_offered_once_the_return_was_shipped() -> None:
    order = delivered_order()
    case = approved_return(order, Reason.QUALITY_PROBLEM)
    assert Action.CANCEL in allowed(case, order, B)
    act(order, case.id, Action.SHIP_RETURN, B, DAY_3 + hours(6), POL, carrier="YTO", tracking_no="Y1")
    assert allowed(case, order, B) == set()


def test_E8_cancel_is_not_offered_once_no_cancellation_is_left() -> None:
    pol = policy(max_buyer_cancellations=1)
    order = delivered_order()
    first = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3, pol=pol)
    act(order, first.id, Action.CANCEL, B, DAY_3 + hours(1), pol)
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3 + hours(2), pol=pol,
                    actor=M, buyer_consent=True)
    assert Action.CANCEL not in case.allowed_actions(B, order, pol)
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        act(order, case.id, Action.CANCEL, B, DAY_3 + hours(3), pol)
    assert exc.value.rule == "E8" and order == before


def test_P1_escalation_is_offered_only_on_a_disputed_return_shipping() -> None:
    order = delivered_order()
    case = approved_return(order, Reason.QUALITY_PROBLEM, return_shipping_payer="buyer")
    assert case.return_shipping_disputed and Action.ESCALATE in allowed(case, order, B)
    other = delivered_order("o2")
    agreed = approved_return(other, Reason.QUALITY_PROBLEM)
    assert Action.ESCALATE not in allowed(agreed, other, B)
    refused(other, agreed, Action.ESCALATE, B, DAY_3 + hours(4), "P1", RuleViolation, reason="why not")


def test_P1_P2_one_ruling_and_only_an_unpaid_refund_ruling_is_paid() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3)
    act(order, case.id, Action.REJECT, M, DAY_3 + hours(1), POL, reason="no")
    act(order, case.id, Action.ESCALATE, B, DAY_3 + hours(2), POL, reason="please")
    assert allowed(case, order, P) == {Action.RULE}
    assert allowed(case, order, M) == set()
    refused(order, case, Action.PAY_RULING, M, DAY_3 + hours(3), "P1")
    refused(order, case, Action.ADVANCE_COMPENSATE, P, DAY_3 + hours(3), "P2", reason="shop_closed")
    act(order, case.id, Action.RULE, P, DAY_3 + hours(3), POL, outcome="refund", rationale="faulty")
    assert allowed(case, order, P) == {Action.ADVANCE_COMPENSATE}
    assert allowed(case, order, M) == {Action.PAY_RULING}
    refused(order, case, Action.RULE, P, DAY_3 + hours(4), "P1", outcome="reject", rationale="again")


def test_M7_a_replacement_delivery_is_offered_once() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.RESHIP, Reason.MISSING_PARTS, DAY_3)
    act(order, case.id, Action.APPROVE, M, DAY_3 + hours(1), POL)
    assert allowed(case, order, M) == {Action.SHIP_REPLACEMENT}, "M6: nothing was returned, nothing to reject"
    act(order, case.id, Action.SHIP_REPLACEMENT, M, DAY_3 + hours(2), POL, carrier="SF", tracking_no="S1")
    assert allowed(case, order, M) == {Action.MARK_REPLACEMENT_DELIVERED}
    act(order, case.id, Action.MARK_REPLACEMENT_DELIVERED, M, DAY_3 + hours(30), POL)
    assert allowed(case, order, M) == set() and allowed(case, order, B) == {Action.CONFIRM_RECEIVED}
    refused(order, case, Action.MARK_REPLACEMENT_DELIVERED, P, DAY_3 + hours(31), "M7")


# --- complaints (K2) ---------------------------------------------------------------------------------------
def _complaint(now: datetime) -> dc.Complaint:
    subject = dc.Subject(buyer_id="b1", order_id="o1", order_merchant_id="m1", order_buyer_id="b1")
    return dc.file_complaint(id="cp1", subject=subject, channel=dc.Channel.IN_APP_CHAT, category=dc.Category.OTHER,
                             description="rude", actor=B, now=now, policy=POL)


def test_K2_resolve_not_offered_before_merchant_deadline() -> None:
    c = _complaint(DAY_3)
    assert c.allowed_actions(P, DAY_3, POL) == [dc.Verb.ACCEPT, dc.Verb.REJECT]
    c.accept(P, DAY_3 + hours(1), POL)
    assert c.due_at is not None
    before_due = c.due_at - timedelta(seconds=1)
    assert c.allowed_actions(P, before_due, POL) == []
    assert c.allowed_actions(M, before_due, POL) == [dc.Verb.RESPOND]
    with pytest.raises(RuleViolation) as exc:
        c.resolve(P, before_due, POL, outcome=dc.Outcome.NOT_UPHELD, rationale="r", remedies=[])
    assert exc.value.rule == "K2" and c.status is dc.S.ACCEPTED
    assert c.allowed_actions(P, c.due_at, POL) == [dc.Verb.RESOLVE]


def test_K2_resolve_is_offered_as_soon_as_the_merchant_answered() -> None:
    c = _complaint(DAY_3)
    c.accept(P, DAY_3 + hours(1), POL)
    c.respond(M, DAY_3 + hours(2), POL, answer="sorry")
    assert c.allowed_actions(P, DAY_3 + hours(2), POL) == [dc.Verb.RESOLVE]
    assert c.allowed_actions(M, DAY_3 + hours(2), POL) == [] and c.allowed_actions(B, DAY_3 + hours(2), POL) == []


# --- orders, groups, withdrawals ---------------------------------------------------------------------------
def test_G2_E3_E4_ship_and_deliver_are_offered_only_when_they_can_happen() -> None:
    _, (member,) = group_with_orders(auto_complete=True)
    assert member.allowed_actions(M) == []
    with pytest.raises(StateConflict) as exc:
        member.ship(M, "SF", "S1", PAID + hours(1))
    assert exc.value.rule == "G2"
    order = paid_order("o9")
    assert order.allowed_actions(M) == [OrderAction.SHIP] and order.allowed_actions(B) == []
    with pytest.raises(NotPermitted):
        order.ship(B, "SF", "S1", PAID + hours(1))
    order.ship(M, "SF", "S1", PAID + hours(1))
    assert order.allowed_actions(SYS) == [OrderAction.DELIVER] and order.allowed_actions(M) == [OrderAction.DELIVER]
    order.deliver(SYS, PAID + hours(20), PAID + hours(20))
    assert order.allowed_actions(M) == []


def test_G5_complete_is_offered_only_where_allowed_and_before_expiry() -> None:
    group, orders = group_with_orders(auto_complete=False)
    assert group.allowed_actions(M, PAID + hours(1)) == []
    with pytest.raises(RuleViolation):
        group.complete(orders, M, PAID + hours(1))
    auto, members = group_with_orders("g2", auto_complete=True)
    assert auto.allowed_actions(B, PAID + hours(1)) == []
    assert auto.allowed_actions(M, PAID + hours(1)) == ["complete"]
    assert auto.allowed_actions(P, auto.expires_at) == [], "G4: at expiry the worker decides"
    auto.complete(members, P, PAID + hours(1))
    assert auto.status is GroupStatus.FORMED and auto.allowed_actions(P, PAID + hours(1)) == []


def test_D1_a_withdrawal_offers_cancel_only_while_pending_and_only_to_people_who_may() -> None:
    w = dd.Withdrawal("w1", "m1", 100, DAY_3, DAY_10)
    assert w.allowed_actions(M) == ["cancel"] and w.allowed_actions(P) == ["cancel"] and w.allowed_actions(B) == []
    w.move("cancel", M, DAY_3)
    assert w.allowed_actions(M) == []
    with pytest.raises(StateConflict):
        w.move("cancel", P, DAY_3)
