"""RULEBOOK §1: group-buy orders (拼单), G1–G5."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import (
    PAID,
    PAID_FEN,
    SHIPPING_FEN,
    categories,
    group_with_orders,
    hours,
    new_case,
    paid_order,
    policy,
    snapshot,
    t,
)

from aftersales.domain.cases import Action, act
from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.eligibility import evaluate
from aftersales.domain.errors import InvalidInput, NotPermitted, RuleViolation, StateConflict
from aftersales.domain.events import Actor
from aftersales.domain.groups import GroupStatus, open_group
from aftersales.domain.orders import OrderStatus, RefundKind, RefundStatus

EXPIRES = t("2026-03-02T10:00:00+08:00")  # PAID + 24 h


# --- G1 -------------------------------------------------------------------------------------------------
def test_G1_group_opens_when_first_member_pays_and_waits_24_hours() -> None:
    group, (order,) = group_with_orders(size=3)
    assert group.status is GroupStatus.PENDING
    assert group.opened_at == PAID
    assert group.expires_at == EXPIRES == PAID + timedelta(hours=24)
    assert group.member_ids == [order.id]
    assert order.status is OrderStatus.GROUP_PENDING
    opened = next(e for e in group.pending_events if e.kind == "group_opened")
    assert opened.rules == ("G1",) and opened.data["expires_at"] == "2026-03-02T02:00:00+00:00"  # UTC (T0)


def test_G1_group_wait_is_a_policy_parameter() -> None:
    group, _ = group_with_orders(pol=policy(group_wait_hours=6))
    assert group.expires_at == PAID + timedelta(hours=6)


def test_G1_no_member_joins_after_expiry_or_from_another_shop() -> None:
    group, orders = group_with_orders(size=3)
    late = paid_order("late", paid_at=EXPIRES, group_id=group.id)
    before = snapshot(group)
    with pytest.raises(StateConflict) as exc:
        group.join(late, EXPIRES, orders)
    assert exc.value.rule == "G1"
    other_shop = paid_order("other", merchant_id="m2", paid_at=PAID + hours(1), group_id=group.id)
    with pytest.raises(InvalidInput) as exc2:
        group.join(other_shop, PAID + hours(1), orders)
    assert exc2.value.rule == "G1"
    assert group == before


def test_G1_group_size_must_be_sensible() -> None:
    first = paid_order("x", group_id="gx")
    with pytest.raises(InvalidInput) as exc:
        open_group(id="gx", merchant_id="m1", size=1, auto_complete=False, first=first, policy=policy())
    assert exc.value.rule == "G1"


# --- G2 -------------------------------------------------------------------------------------------------
def test_G2_buyer_can_open_nothing_while_the_group_is_pending() -> None:
    group, (order,) = group_with_orders()
    before = snapshot(order)
    for case_type in CaseType:
        with pytest.raises(RuleViolation) as exc:
            new_case(order, case_type, Reason.NO_REASON, PAID + hours(1), group=group)
        assert exc.value.rule in ("E1", "G2")
    assert order == before


def test_G2_explanation_carries_the_exact_expiry_and_what_happens_next() -> None:
    group, (order,) = group_with_orders()
    answer = evaluate(order, actor=Actor.BUYER, now=PAID + hours(3), policy=policy(), categories=categories(), group=group)
    for option in answer.options:
        assert not option.allowed
        assert option.explanation.params["expires_at"] == group.expires_at == EXPIRES
    text = answer.options[0].explanation.text
    assert "G2" in text  # explains the rule
    assert "expires at {expires_at}" in text  # the exact instant
    assert "refunded" in text and "automatically" in text and "items and shipping" in text  # unformed → full refund
    assert "Inviting others" in text and "completing the group" in text  # invite others / G5


def test_G2_explanation_of_an_auto_completing_group_says_it_forms_at_expiry_G4() -> None:
    group, (order,) = group_with_orders(auto_complete=True)
    answer = evaluate(order, actor=Actor.BUYER, now=PAID + hours(3), policy=policy(), categories=categories(), group=group)
    option = answer.options[0]
    assert not option.allowed and option.explanation.params["expires_at"] == EXPIRES
    text = option.explanation.text
    assert "G2" in text and "completed automatically" in text
    assert "refunded" not in text  # an auto-completing group never fails, so no refund is promised (G4)


def test_G2_merchant_cannot_ship_an_order_of_a_pending_group() -> None:
    _, (order,) = group_with_orders()
    before = snapshot(order)
    with pytest.raises(StateConflict) as exc:
        order.ship(Actor.MERCHANT, "SF", "SF1", PAID + hours(2))
    assert exc.value.rule == "G2"
    assert order == before


# --- G3 -------------------------------------------------------------------------------------------------
def test_G3_last_member_paying_before_expiry_forms_the_group() -> None:
    group, orders = group_with_orders(size=3, members=2)
    assert group.status is GroupStatus.PENDING
    last = paid_order("g1-o3", paid_at=EXPIRES - timedelta(seconds=1), group_id=group.id, buyer_id="b3")
    group.join(last, EXPIRES - timedelta(seconds=1), orders)
    orders.append(last)
    assert group.status is GroupStatus.FORMED
    assert all(o.status is OrderStatus.AWAITING_SHIPMENT for o in orders)
    assert all(any("G3" in e.rules for e in o.pending_events) for o in orders)
    # §2 applies now: a refund before shipment (E2), and the merchant can ship.
    option = evaluate(orders[0], actor=Actor.BUYER, now=EXPIRES, policy=policy(), categories=categories(),
                      group=group).option(CaseType.REFUND_ONLY)
    assert option.allowed and option.rule == "E2"
    orders[1].ship(Actor.MERCHANT, "SF", "SF2", EXPIRES)
    assert orders[1].status is OrderStatus.SHIPPED


def test_G3_a_formed_group_takes_no_more_members() -> None:
    group, orders = group_with_orders(size=2, members=2)
    assert group.status is GroupStatus.FORMED
    extra = paid_order("extra", paid_at=PAID + hours(1), group_id=group.id)
    with pytest.raises(StateConflict) as exc:
        group.join(extra, PAID + hours(1), orders)
    assert exc.value.rule == "G1"


# --- G4 -------------------------------------------------------------------------------------------------
def test_G4_unformed_group_fails_and_refunds_items_and_shipping_exactly_once() -> None:
    group, orders = group_with_orders(size=3, members=2)
    refunds = group.expire(orders, EXPIRES + timedelta(minutes=5))
    assert group.status is GroupStatus.FAILED and group.closed_at == EXPIRES
    assert len(refunds) == 2
    for order, refund in zip(orders, refunds, strict=True):
        assert order.status is OrderStatus.CANCELLED and order.cancelled_at == EXPIRES
        assert refund.kind is RefundKind.GROUP_FAILURE and refund.rule == "G4"
        assert refund.shipping_fen == SHIPPING_FEN
        assert refund.goods == {"sku-a": 10000, "sku-b": 10000}
        assert refund.amount_fen == PAID_FEN == order.paid_fen
        assert order.refunded_fen == order.paid_fen and order.remaining_fen == 0
        assert order.cases == [], "no after-sales case is needed"
        assert refund.key == f"group-failure:{order.id}"
        assert any(e.kind == "refund_issued" and e.actor is Actor.SYSTEM for e in order.pending_events)

    before = snapshot(orders), snapshot(group)
    with pytest.raises(StateConflict) as exc:
        group.expire(orders, EXPIRES + hours(1))
    assert exc.value.rule == "G4"
    with pytest.raises(StateConflict):
        orders[0].cancel_for_group_failure(EXPIRES + hours(1))
    assert (orders, group) == before, "a second expiry refunds nothing"


def test_G4_group_does_not_expire_before_its_window_ends() -> None:
    group, orders = group_with_orders(size=3, members=2)
    before = snapshot(orders), snapshot(group)
    with pytest.raises(StateConflict) as exc:
        group.expire(orders, EXPIRES - timedelta(seconds=1))
    assert exc.value.rule == "G4"
    assert (orders, group) == before


def test_G4_cancelled_order_of_a_failed_group_has_nothing_left_to_ask() -> None:
    group, orders = group_with_orders(size=3, members=1)
    group.expire(orders, EXPIRES)
    answer = evaluate(orders[0], actor=Actor.BUYER, now=EXPIRES + hours(1), policy=policy(), categories=categories(),
                      group=group)
    assert not any(o.allowed for o in answer.options)
    with pytest.raises(RuleViolation):
        new_case(orders[0], CaseType.REFUND_ONLY, Reason.NO_REASON, EXPIRES + hours(1), group=group)


def test_G4_refund_of_a_failed_group_settles_once() -> None:
    group, orders = group_with_orders(size=2, members=1)
    (refund,) = group.expire(orders, EXPIRES)
    assert refund.status is RefundStatus.PENDING
    assert orders[0].settle_refund(refund.key, EXPIRES + hours(1)) is True
    assert orders[0].settle_refund(refund.key, EXPIRES + hours(2)) is False
    assert refund.status is RefundStatus.SETTLED and refund.settled_at == EXPIRES + hours(1)
    assert len(orders[0].refunds) == 1


def test_G4_auto_completion_forms_the_group_at_expiry() -> None:
    group, orders = group_with_orders(size=5, members=2, auto_complete=True)
    refunds = group.expire(orders, EXPIRES + hours(3))
    assert refunds == []
    assert group.status is GroupStatus.FORMED and group.closed_at == EXPIRES
    for order in orders:
        assert order.status is OrderStatus.AWAITING_SHIPMENT
        assert order.refunds == []
        formed = next(e for e in order.pending_events if e.kind == "group_formed")
        assert formed.actor is Actor.SYSTEM and formed.at == EXPIRES and "G4" in formed.rules


# --- G5 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("actor", [Actor.MERCHANT, Actor.PLATFORM])
def test_G5_merchant_or_platform_completes_early_where_auto_completion_is_allowed(actor: Actor) -> None:
    pol = policy()
    group, orders = group_with_orders(size=4, members=2, auto_complete=True)
    now = PAID + hours(2)
    group.complete(orders, actor, now)
    assert group.status is GroupStatus.FORMED and group.closed_at == now
    assert all(o.status is OrderStatus.AWAITING_SHIPMENT for o in orders)
    # The faster way out (seed-000): a refund before shipment (E2), which the merchant cannot refuse (M2).
    case = new_case(orders[0], CaseType.REFUND_ONLY, Reason.NO_REASON, now + hours(1), group=group, pol=pol)
    assert case.refund_fen == orders[0].paid_fen
    with pytest.raises(RuleViolation) as exc:
        act(orders[0], case.id, Action.REJECT, Actor.MERCHANT, now + hours(2), pol, reason="Group is formed now")
    assert exc.value.rule == "M2"


def test_G5_early_completion_refused_without_auto_complete() -> None:
    group, orders = group_with_orders(size=4, members=2, auto_complete=False)
    before = snapshot(orders), snapshot(group)
    with pytest.raises(RuleViolation) as exc:
        group.complete(orders, Actor.MERCHANT, PAID + hours(2))
    assert exc.value.rule == "G5"
    assert (orders, group) == before


def test_G5_buyer_cannot_complete_a_group() -> None:
    group, orders = group_with_orders(size=4, members=2, auto_complete=True)
    with pytest.raises(NotPermitted) as exc:
        group.complete(orders, Actor.BUYER, PAID + hours(2))
    assert exc.value.rule == "G5"
    assert group.status is GroupStatus.PENDING


def test_G5_completion_after_expiry_is_refused() -> None:
    group, orders = group_with_orders(size=4, members=2, auto_complete=True)
    with pytest.raises(StateConflict):
        group.complete(orders, Actor.MERCHANT, EXPIRES)
    assert group.status is GroupStatus.PENDING
