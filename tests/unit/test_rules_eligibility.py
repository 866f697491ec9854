"""RULEBOOK §2: what a buyer may open, E1–E10."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import (
    AFTER_SALES_END,
    DAY_3,
    DAY_10,
    DAY_20,
    DELIVERED,
    NO_REASON_END,
    PAID,
    PAID_FEN,
    SHIPPED,
    SHIPPING_FEN,
    STATUTORY,
    case_events,
    categories,
    days,
    delivered_order,
    group_with_orders,
    hours,
    item,
    new_case,
    paid_order,
    policy,
    shipped_order,
    snapshot,
    t,
)

from aftersales.domain.cases import Action, CaseStatus, CloseReason, act
from aftersales.domain.catalog import ALL_REASONS, CaseType, Reason
from aftersales.domain.eligibility import Eligibility, evaluate
from aftersales.domain.errors import InvalidInput, RuleViolation, StateConflict
from aftersales.domain.events import Actor
from aftersales.domain.orders import Order, OrderStatus, Payer, RefundKind
from aftersales.domain.policy import Policy
from aftersales.domain.timeutil import window_end


def options(order: Order, now: object, actor: Actor = Actor.BUYER, pol: Policy | None = None, **kw: object) -> Eligibility:
    return evaluate(order, actor=actor, now=now, policy=pol or policy(), categories=categories(), **kw)  # type: ignore[arg-type]


def cancel_case(order: Order, now: object, pol: Policy | None = None) -> dict[str, object]:
    """Open a refund-only case and cancel it; returns the cancellation event's data."""
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, now, pol=pol)  # type: ignore[arg-type]
    act(order, case.id, Action.CANCEL, Actor.BUYER, now + hours(1), pol or policy())  # type: ignore[operator]
    return case_events(order, case.id)[-1].data


# --- E1 -------------------------------------------------------------------------------------------------
def test_E1_pending_group_refuses_every_case_type() -> None:
    group, (order,) = group_with_orders()
    answer = options(order, PAID + hours(1), group=group)
    assert {o.type for o in answer.options} == set(CaseType)
    assert all(not o.allowed and o.rule == "E1" for o in answer.options)
    assert all(o.max_refund_fen == 0 for o in answer.options)


# --- E2 -------------------------------------------------------------------------------------------------
def test_E2_before_shipment_refund_only_of_the_whole_order_for_any_reason() -> None:
    order = paid_order()
    answer = options(order, PAID + hours(1))
    refund = answer.option(CaseType.REFUND_ONLY)
    assert refund.allowed and refund.rule == "E2"
    assert refund.max_refund_fen == PAID_FEN  # items and shipping
    assert set(refund.reasons) == set(ALL_REASONS)
    for other in CaseType:
        if other is not CaseType.REFUND_ONLY:
            assert not answer.option(other).allowed and answer.option(other).rule == "E2"
    case = new_case(order, CaseType.REFUND_ONLY, Reason.NO_REASON, PAID + hours(1))
    assert case.refund_fen == PAID_FEN and case.includes_shipping
    assert case.items == {"sku-a": 1, "sku-b": 2}


def test_E2_a_part_of_the_order_cannot_be_requested_before_shipment() -> None:
    order = paid_order()
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.REFUND_ONLY, Reason.NO_REASON, PAID + hours(1), items={"sku-a": 1})
    assert exc.value.rule == "E2"
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.REFUND_ONLY, Reason.NO_REASON, PAID + hours(1), refund_fen=PAID_FEN - 1)
    assert exc.value.rule == "E2"
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, PAID + hours(1))
    assert exc.value.rule == "E2"
    assert order == before


def test_E2_approved_refund_pays_items_and_shipping_and_cancels_the_order() -> None:
    pol = policy()
    order = paid_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.OTHER, PAID + hours(1), pol=pol)
    act(order, case.id, Action.APPROVE, Actor.MERCHANT, PAID + hours(2), pol)
    (refund,) = case.refunds(order)
    assert refund.shipping_fen == SHIPPING_FEN and refund.goods_fen == PAID_FEN - SHIPPING_FEN
    assert order.status is OrderStatus.CANCELLED
    with pytest.raises(StateConflict):
        order.ship(Actor.MERCHANT, "SF", "SF1", PAID + hours(3))


# --- E3 -------------------------------------------------------------------------------------------------
def test_E3_shipped_not_delivered_refund_only_and_no_return_yet() -> None:
    order = shipped_order()
    answer = options(order, SHIPPED + hours(1))
    refund = answer.option(CaseType.REFUND_ONLY)
    assert refund.allowed and refund.rule == "E3" and refund.max_refund_fen == PAID_FEN
    for other in (CaseType.RETURN_REFUND, CaseType.EXCHANGE, CaseType.RESHIP, CaseType.REPAIR):
        assert not answer.option(other).allowed and answer.option(other).rule == "E3"
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, SHIPPED + hours(1))
    assert exc.value.rule == "E3"
    case = new_case(order, CaseType.REFUND_ONLY, Reason.LATE_DELIVERY, SHIPPED + hours(1))
    assert case.refund_fen == PAID_FEN and case.includes_shipping


# --- E4 -------------------------------------------------------------------------------------------------
def test_E4_no_reason_return_until_end_of_local_day_D_plus_7() -> None:
    order = delivered_order()
    option = options(order, DAY_3).option(CaseType.RETURN_REFUND)
    assert option.allowed and option.rule == "E4"
    assert Reason.NO_REASON in option.reasons
    assert option.reason_deadlines["no_reason"] == NO_REASON_END
    assert option.reason_deadlines["quality_problem"] == AFTER_SALES_END
    case = new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3)
    assert case.items == {"sku-a": 1, "sku-b": 2}
    assert case.refund_fen == PAID_FEN - SHIPPING_FEN, "no-reason: the order's shipping is not refunded (E10)"


def test_E4_no_reason_window_is_a_policy_parameter() -> None:
    pol = policy(no_reason_days=10)
    order = delivered_order()
    option = options(order, DAY_10, pol=pol).option(CaseType.RETURN_REFUND)
    assert Reason.NO_REASON in option.reasons
    assert option.reason_deadlines["no_reason"] == t("2026-03-12T00:00:00+08:00")


@pytest.mark.parametrize("category", STATUTORY)
@pytest.mark.parametrize("confirmed", [False, True])
def test_E4_statutory_exclusion_always_binds(category: str, confirmed: bool) -> None:
    order = delivered_order(items=[item("x", category=category, exclusion_confirmed=confirmed)])
    option = options(order, DAY_3).option(CaseType.RETURN_REFUND)
    assert Reason.NO_REASON not in option.reasons
    assert option.allowed and option.rule == "E5", "a merchant-responsibility return is still possible"
    assert "by law" in option.explanation.params["excluded"].text
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3)
    assert exc.value.rule == "E4"
    assert order == before
    new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3)


def test_E4_shop_exclusion_without_buyer_confirmation_does_not_bind() -> None:
    order = delivered_order(items=[item("u", category="underwear", exclusion_confirmed=False)])
    option = options(order, DAY_3).option(CaseType.RETURN_REFUND)
    assert option.allowed and option.rule == "E4" and Reason.NO_REASON in option.reasons
    case = new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3)
    assert case.items == {"u": 1}


def test_E4_shop_exclusion_confirmed_at_purchase_binds() -> None:
    order = delivered_order(items=[item("u", category="underwear", exclusion_confirmed=True)])
    option = options(order, DAY_3).option(CaseType.RETURN_REFUND)
    assert Reason.NO_REASON not in option.reasons
    assert "you confirmed at purchase" in option.explanation.params["excluded"].text
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3)
    assert exc.value.rule == "E4"


def test_E4_mixed_order_no_reason_return_covers_only_eligible_items() -> None:
    order = delivered_order(items=[item("a"), item("f", category="fresh", unit_price_fen=3000)])
    option = options(order, DAY_3).option(CaseType.RETURN_REFUND)
    assert option.allowed and option.rule == "E4"
    assert option.explanation.params["excluded"].params["title"] == "Item f"
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3, items={"a": 1, "f": 1})
    assert exc.value.rule == "E4"
    assert order == before
    case = new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3)
    assert case.items == {"a": 1} and case.refund_fen == 10000


# --- E5 -------------------------------------------------------------------------------------------------
def test_E5_merchant_responsibility_within_the_after_sales_window() -> None:
    order = delivered_order()
    answer = options(order, DAY_10)
    for case_type in (CaseType.REFUND_ONLY, CaseType.RETURN_REFUND, CaseType.EXCHANGE, CaseType.RESHIP):
        option = answer.option(case_type)
        assert option.allowed and option.rule == "E5", case_type
        assert option.deadline == AFTER_SALES_END == window_end(DELIVERED, 15, "Asia/Shanghai")
        assert Reason.NO_REASON not in option.reasons
    assert set(answer.option(CaseType.RESHIP).reasons) == {Reason.MISSING_PARTS, Reason.NOT_RECEIVED}
    assert not answer.option(CaseType.REPAIR).allowed


def test_E5_refund_only_may_be_partial_and_the_buyer_keeps_the_goods() -> None:
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.DAMAGED_IN_TRANSIT, DAY_10, items={"sku-b": 1}, refund_fen=2000)
    assert case.refund_fen == 2000 and case.items == {"sku-b": 1} and not case.includes_shipping


def test_E5_reship_only_for_missing_items() -> None:
    order = delivered_order()
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.RESHIP, Reason.QUALITY_PROBLEM, DAY_10)
    assert exc.value.rule == "E5"
    assert order == before
    case = new_case(order, CaseType.RESHIP, Reason.MISSING_PARTS, DAY_10, items={"sku-b": 1})
    assert case.refund_fen is None


def test_E5_window_ends_at_local_midnight_after_day_D_plus_15() -> None:
    order = delivered_order()
    assert options(order, AFTER_SALES_END - timedelta(seconds=1)).option(CaseType.RETURN_REFUND).allowed
    late = options(order, AFTER_SALES_END)
    assert not any(o.allowed for o in late.options)
    assert {o.rule for o in late.options} == {"E7"}


def test_E5_window_may_be_set_per_category() -> None:
    order = delivered_order(items=[item("sofa", category="furniture")])
    option = options(order, DAY_20).option(CaseType.RETURN_REFUND)
    assert option.allowed and option.rule == "E5"
    assert option.deadline == t("2026-04-01T00:00:00+08:00")


# --- E6 -------------------------------------------------------------------------------------------------
def test_E6_warranty_repair_after_the_after_sales_window() -> None:
    order = delivered_order(items=[item("fridge", category="electrical", unit_price_fen=300000)])
    answer = options(order, DAY_20)
    repair = answer.option(CaseType.REPAIR)
    assert repair.allowed and repair.rule == "E6"
    assert repair.reasons == (Reason.QUALITY_PROBLEM,)
    assert repair.deadline == window_end(DELIVERED, 365, "Asia/Shanghai") == t("2027-03-02T00:00:00+08:00")
    for other in (CaseType.REFUND_ONLY, CaseType.RETURN_REFUND, CaseType.EXCHANGE, CaseType.RESHIP):
        assert not answer.option(other).allowed and answer.option(other).rule == "E6"
    with pytest.raises(RuleViolation):
        new_case(order, CaseType.REPAIR, Reason.NOT_AS_DESCRIBED, DAY_20)
    case = new_case(order, CaseType.REPAIR, Reason.QUALITY_PROBLEM, DAY_20)
    assert case.status is CaseStatus.AWAITING_MERCHANT


def test_E6_no_repair_inside_the_window_and_none_without_warranty() -> None:
    electrical = delivered_order(items=[item("fridge", category="electrical")])
    inside = options(electrical, DAY_10).option(CaseType.REPAIR)
    assert not inside.allowed and inside.rule == "E6"
    general = delivered_order("o2")
    assert options(general, DAY_10).option(CaseType.REPAIR).rule == "E6"
    assert not options(general, DAY_20).option(CaseType.REPAIR).allowed


def test_E6_warranty_ends_at_local_midnight_after_day_D_plus_warranty_days() -> None:
    order = delivered_order(items=[item("fridge", category="electrical")])
    assert options(order, t("2027-03-01T23:59:59+08:00")).option(CaseType.REPAIR).allowed
    assert not options(order, t("2027-03-02T00:00:00+08:00")).option(CaseType.REPAIR).allowed


# --- E7 -------------------------------------------------------------------------------------------------
def test_E7_after_the_windows_the_buyer_can_open_nothing_and_is_told_to_contact_the_shop() -> None:
    order = delivered_order()
    answer = options(order, DAY_20)
    assert all(not o.allowed and o.rule == "E7" for o in answer.options)
    assert "contact the shop" in answer.options[0].explanation.text
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_20)
    assert exc.value.rule == "E7"
    assert order == before


def test_E7_merchant_opens_on_the_buyers_behalf_only_with_consent() -> None:
    pol = policy()
    order = delivered_order()
    answer = options(order, DAY_20, actor=Actor.MERCHANT)
    assert all(o.allowed and o.rule == "E7" for o in answer.options)
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_20, actor=Actor.MERCHANT)
    assert exc.value.rule == "E7"
    assert order == before
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_20, actor=Actor.MERCHANT,
                    buyer_consent=True, pol=pol)
    assert case.opened_by is Actor.MERCHANT
    opened = case_events(order, case.id)[0]
    assert opened.actor is Actor.MERCHANT and opened.data["opened_on_behalf"] is True and "E7" in opened.rules
    # The merchant opened it with the buyer's consent: it starts approved (no M1 wait), with M3's proposal.
    assert case.status is CaseStatus.AWAITING_RETURN_SHIPMENT
    approval = case_events(order, case.id)[1]
    assert approval.kind == "approve" and approval.actor is Actor.MERCHANT and {"E7", "M1"} <= set(approval.rules)


# --- E8 -------------------------------------------------------------------------------------------------
def test_E8_third_cancellation_blocks_a_fourth_opening_counting_down_2_1_0() -> None:
    pol = policy()
    order = delivered_order()
    assert options(order, DAY_3).cancellations_left == 3
    lefts = []
    for n in range(3):
        data = cancel_case(order, DAY_3 + hours(3 * n), pol)
        lefts.append(data["cancellations_left"])
        assert options(order, DAY_3 + hours(3 * n + 2)).cancellations_left == data["cancellations_left"]
    assert lefts == [2, 1, 0]
    assert order.buyer_cancellations == 3
    answer = options(order, DAY_10)
    assert answer.cancellations_left == 0
    assert all(not o.allowed and o.rule == "E8" for o in answer.options)
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_10)
    assert exc.value.rule == "E8"
    assert order == before


def test_E8_merchant_opened_cases_are_not_blocked() -> None:
    pol = policy()
    order = delivered_order()
    for n in range(3):
        cancel_case(order, DAY_3 + hours(3 * n), pol)
    # Inside the windows, with the buyer's consent ...
    assert options(order, DAY_10, actor=Actor.MERCHANT).option(CaseType.RETURN_REFUND).allowed
    # ... and after them (E7).
    answer = options(order, DAY_20, actor=Actor.MERCHANT)
    assert all(o.allowed and o.rule == "E7" for o in answer.options)
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_20, actor=Actor.MERCHANT, buyer_consent=True)
    assert case.opened_by is Actor.MERCHANT and case.status is CaseStatus.AWAITING_RETURN_SHIPMENT
    # The buyer has used every cancellation: this case cannot be cancelled by the buyer any more.
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        act(order, case.id, Action.CANCEL, Actor.BUYER, DAY_20 + hours(1), pol)
    assert exc.value.rule == "E8"
    assert order == before


def test_E8_limit_is_a_policy_parameter_and_counts_per_order() -> None:
    pol = policy(max_buyer_cancellations=1)
    order = delivered_order()
    assert cancel_case(order, DAY_3, pol)["cancellations_left"] == 0
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3 + hours(2), pol=pol)
    assert exc.value.rule == "E8"
    other = delivered_order("o2")  # same buyer, another order
    assert options(other, DAY_3, pol=pol).cancellations_left == 1
    new_case(other, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3, pol=pol)


# --- E9 -------------------------------------------------------------------------------------------------
def test_E9_one_open_case_per_order_at_a_time() -> None:
    pol = policy()
    order = delivered_order()
    first = new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, DAY_3, pol=pol)
    answer = options(order, DAY_3 + hours(1))
    assert all(not o.allowed and o.rule == "E9" for o in answer.options)
    assert answer.options[0].explanation.params["case_id"] == first.id
    before = snapshot(order)
    for actor in (Actor.BUYER, Actor.MERCHANT):
        with pytest.raises(RuleViolation) as exc:
            new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_3 + hours(1), actor=actor, buyer_consent=True)
        assert exc.value.rule == "E9"
    assert order == before
    act(order, first.id, Action.CANCEL, Actor.BUYER, DAY_3 + hours(2), pol)
    second = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_3 + hours(3), pol=pol)
    assert order.open_case() is second


def test_E9_a_case_waiting_for_its_refund_is_still_open() -> None:
    pol = policy()
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10, items={"sku-a": 1}, pol=pol)
    act(order, case.id, Action.APPROVE, Actor.MERCHANT, DAY_10 + hours(1), pol)
    assert case.status is CaseStatus.REFUND_PENDING
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10 + hours(2), items={"sku-b": 1})
    assert exc.value.rule == "E9"


# --- E10 ------------------------------------------------------------------------------------------------
def test_E10_request_exceeding_what_is_left_is_refused_never_capped() -> None:
    order = delivered_order()
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10, refund_fen=20001)
    assert exc.value.rule == "E10"
    assert exc.value.msg.params == {"requested_fen": 20001, "left_fen": 20000}
    assert order == before


def test_E10_across_two_cases_on_the_same_order() -> None:
    pol = policy()
    order = delivered_order()
    first = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10, items={"sku-a": 1}, refund_fen=3000, pol=pol)
    act(order, first.id, Action.APPROVE, Actor.MERCHANT, DAY_10 + hours(1), pol)
    (refund,) = first.refunds(order)
    order.settle_refund(refund.key, DAY_10 + hours(2))
    assert first.close_reason is CloseReason.REFUNDED
    assert order.remaining_goods("sku-a") == 7000
    assert options(order, DAY_10 + hours(3)).option(CaseType.REFUND_ONLY).max_refund_fen == 17000

    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10 + hours(3), items={"sku-a": 1}, refund_fen=8000)
    assert exc.value.rule == "E10"
    assert exc.value.msg.params == {"requested_fen": 8000, "left_fen": 7000}
    assert order == before
    second = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_10 + hours(3), items={"sku-a": 1})
    assert second.refund_fen == 7000, "the default is what is left, not what was paid"
    assert order.refunded_fen <= order.paid_fen


def test_E10_offers_and_rulings_cannot_exceed_what_is_left_either() -> None:
    pol = policy()
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10, items={"sku-a": 1}, pol=pol)
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        act(order, case.id, Action.OFFER_PARTIAL_REFUND, Actor.MERCHANT, DAY_10 + hours(1), pol, refund_fen=10001)
    assert exc.value.rule == "E10"
    assert order == before


@pytest.mark.parametrize(
    ("case_type", "reason", "items", "expected"),
    [
        (CaseType.RETURN_REFUND, Reason.NO_REASON, None, 20000),  # buyer's reason: no shipping
        (CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, None, 20800),  # merchant's, every item: shipping too
        (CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, {"sku-a": 1, "sku-b": 1}, 15000),  # not every item
        (CaseType.RETURN_REFUND, Reason.WRONG_ITEM, {"sku-a": 1}, 10000),
        (CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, None, 20000),  # keeps the goods: no shipping
    ],
)
def test_E10_shipping_fee_only_before_delivery_or_in_merchant_responsibility_returns_of_every_item(
    case_type: CaseType, reason: Reason, items: dict[str, int] | None, expected: int
) -> None:
    order = delivered_order()
    case = new_case(order, case_type, reason, DAY_3, items=items)
    assert case.refund_fen == expected == case.max_refund_fen(order)
    assert case.includes_shipping is (expected == PAID_FEN)


def test_E10_refunded_never_exceeds_paid_per_item_and_shipping() -> None:
    order = delivered_order()
    key = 0

    def refund(goods: dict[str, int], shipping: int = 0) -> None:
        nonlocal key
        key += 1
        order.issue_refund(key=f"k{key}", kind=RefundKind.CASE, payer=Payer.MERCHANT, rule="E10", now=DAY_3,
                           actor=Actor.SYSTEM, goods=goods, shipping_fen=shipping)

    refund({"sku-a": 6000}, SHIPPING_FEN)
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        refund({"sku-a": 4001})
    assert exc.value.rule == "E10"
    with pytest.raises(RuleViolation) as exc:
        refund({"sku-b": 1}, 1)  # the shipping fee only once
    assert exc.value.rule == "E10"
    with pytest.raises(InvalidInput):
        refund({}, 0)  # T1: a refund is a positive amount
    assert order == before
    refund({"sku-a": 4000, "sku-b": 10000})
    assert order.refunded_fen == order.paid_fen == PAID_FEN and order.remaining_fen == 0
    assert all(not o.allowed for o in options(order, DAY_3 + days(1)).options)


def test_E10_every_option_lists_rule_explanation_deadline_and_maximum() -> None:
    order = delivered_order()
    answer = options(order, DAY_3)
    assert [o.type for o in answer.options] == list(CaseType)
    for option in answer.options:
        assert option.rule and option.explanation.text
        if option.allowed:
            assert option.deadline is not None and option.max_refund_fen > 0 and option.reasons
    assert answer.option(CaseType.RETURN_REFUND).max_refund_fen == PAID_FEN
    assert answer.option(CaseType.REFUND_ONLY).max_refund_fen == PAID_FEN - SHIPPING_FEN
