"""RULEBOOK §0: T0 time, T1 money, T2 actors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from factories import (
    DAY_3,
    DAY_10,
    DELIVERED,
    NO_REASON_END,
    PAID,
    PAID_FEN,
    SHIPPED,
    categories,
    delivered_order,
    group_with_orders,
    hours,
    item,
    new_case,
    paid_order,
    policy,
    snapshot,
    t,
)

from aftersales.domain.cases import Action, Auto, CaseStatus, act, fire
from aftersales.domain.catalog import CaseType, Reason
from aftersales.domain.eligibility import evaluate
from aftersales.domain.errors import InvalidInput, NotPermitted, RuleViolation, StateConflict
from aftersales.domain.events import Actor
from aftersales.domain.money import MAX_FEN, require_fen, split_proportionally
from aftersales.domain.opening import open_case
from aftersales.domain.orders import OrderStatus, new_order
from aftersales.domain.timeutil import after_hours, require_aware, window_end

RULE_ID = re.compile(r"^(T[0-2]|G[1-5]|E([1-9]|10)|M[1-8]|C1|F1|P[12]|K[12]|D[1-3]|S[1-6])$")


# --- T0 -------------------------------------------------------------------------------------------------
def test_T0_worked_example_window_end_is_local_midnight_after_day_D_plus_N() -> None:
    end = window_end(t("2026-03-01T23:30:00+08:00"), 7, "Asia/Shanghai")
    assert end == t("2026-03-09T00:00:00+08:00")
    assert end.utcoffset() == timedelta(0), "instants are UTC (T0)"
    assert end.isoformat() == "2026-03-08T16:00:00+00:00"


def test_T0_worked_example_no_reason_allowed_at_last_second_of_day_D_plus_7() -> None:
    order = delivered_order()
    last_second = t("2026-03-08T23:59:59+08:00")
    option = evaluate(order, actor=Actor.BUYER, now=last_second, policy=policy(), categories=categories()).option(
        CaseType.RETURN_REFUND
    )
    assert option.allowed and option.rule == "E4"
    assert Reason.NO_REASON in option.reasons
    assert option.reason_deadlines["no_reason"] == NO_REASON_END
    case = new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, last_second)
    assert case.status is CaseStatus.AWAITING_MERCHANT


def test_T0_worked_example_no_reason_refused_at_local_midnight_of_day_D_plus_8() -> None:
    order = delivered_order()
    midnight = t("2026-03-09T00:00:00+08:00")
    option = evaluate(order, actor=Actor.BUYER, now=midnight, policy=policy(), categories=categories()).option(
        CaseType.RETURN_REFUND
    )
    assert Reason.NO_REASON not in option.reasons
    assert option.allowed and option.rule == "E5", "merchant-responsibility returns stay open (E5)"
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.RETURN_REFUND, Reason.NO_REASON, midnight)
    assert exc.value.rule == "E4"
    assert order == before


@pytest.mark.parametrize(
    ("delivered", "end"),
    [
        # 23:59 local on 03-01 is 15:59 UTC the same day: day D is 03-01.
        ("2026-03-01T15:59:00+00:00", "2026-03-09T00:00:00+08:00"),
        # 00:30 local on 03-02 is still 03-01 in UTC: day D is 03-02, local time decides.
        ("2026-03-01T16:30:00+00:00", "2026-03-10T00:00:00+08:00"),
    ],
)
def test_T0_day_windows_count_local_days_not_utc_days(delivered: str, end: str) -> None:
    assert window_end(t(delivered), 7, "Asia/Shanghai") == t(end)


def test_T0_day_windows_follow_the_configured_zone_across_dst() -> None:
    # Europe/Madrid moves from +01:00 to +02:00 on 2026-03-29; the window still ends at local midnight.
    delivered = t("2026-03-28T12:00:00+01:00")
    assert window_end(delivered, 7, "Europe/Madrid") == t("2026-04-05T00:00:00+02:00")
    pol = policy(timezone="Europe/Madrid")
    order = delivered_order(delivered_at=delivered, shipped_at=t("2026-03-27T09:00:00+01:00"),
                            paid_at=t("2026-03-27T08:00:00+01:00"))
    still = evaluate(order, actor=Actor.BUYER, now=t("2026-04-04T23:59:59+02:00"), policy=pol, categories=categories())
    over = evaluate(order, actor=Actor.BUYER, now=t("2026-04-05T00:00:00+02:00"), policy=pol, categories=categories())
    assert Reason.NO_REASON in still.option(CaseType.RETURN_REFUND).reasons
    assert Reason.NO_REASON not in over.option(CaseType.RETURN_REFUND).reasons


def test_T0_hour_limits_are_exact_durations_from_the_trigger() -> None:
    pol = policy()
    order = delivered_order()
    opened = t("2026-03-04T23:15:30+08:00")
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, opened, pol=pol)
    assert case.due_at == opened + timedelta(hours=48)  # M1: 48 h, not "end of a local day"
    assert after_hours(opened, 24) == t("2026-03-05T23:15:30+08:00")
    group, _ = group_with_orders(paid_at=t("2026-03-01T23:30:00+08:00"))
    assert group.expires_at == t("2026-03-02T23:30:00+08:00")  # G1: 24 h exactly


def test_T0_naive_instants_are_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        require_aware(datetime(2026, 3, 1, 10, 0), "paid_at")
    assert exc.value.rule == "T0"
    with pytest.raises(InvalidInput) as exc:
        paid_order(paid_at=datetime(2026, 3, 1, 10, 0))
    assert exc.value.rule == "T0"
    order = paid_order()
    order.ship(Actor.MERCHANT, "SF", "SF1", SHIPPED)
    before = snapshot(order)
    with pytest.raises(InvalidInput) as exc:
        order.deliver(Actor.SYSTEM, datetime(2026, 3, 1, 23, 30), DELIVERED)
    assert exc.value.rule == "T0"
    assert order == before


def test_T0_instants_are_stored_in_utc() -> None:
    order = delivered_order()
    assert order.paid_at == PAID and order.paid_at.tzinfo is UTC
    assert order.delivered_at == DELIVERED and order.delivered_at is not None and order.delivered_at.tzinfo is UTC
    # The clock passes ``now`` (the service's clock is UTC); day-counted deadlines are computed in UTC.
    now = DAY_3.astimezone(UTC)
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, now)
    assert case.due_at == DAY_3 + hours(48) and case.due_at is not None and case.due_at.utcoffset() == timedelta(0)
    assert all(reminder.utcoffset() == timedelta(0) for reminder in case.reminders)
    act(order, case.id, Action.APPROVE, Actor.MERCHANT, DAY_3 + hours(1), policy())  # a local-offset `now`
    assert case.due_at is not None and case.due_at.tzinfo is UTC  # M5's day window is still computed in UTC


def test_T0_delivery_cannot_be_in_the_future_or_before_shipment() -> None:
    order = paid_order()
    order.ship(Actor.MERCHANT, "SF", "SF1", SHIPPED)
    before = snapshot(order)
    with pytest.raises(InvalidInput) as exc:
        order.deliver(Actor.SYSTEM, SHIPPED + hours(5), SHIPPED + hours(4))
    assert exc.value.rule == "T0"
    with pytest.raises(InvalidInput) as exc:
        order.deliver(Actor.SYSTEM, SHIPPED - hours(1), SHIPPED + hours(4))
    assert exc.value.rule == "T0"
    assert order == before


# --- T1 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [10.0, 99.5, "100", True, Decimal("100"), None])
def test_T1_amounts_must_be_integer_fen(value: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        require_fen(value, "refund_fen")
    assert exc.value.rule == "T1"


@pytest.mark.parametrize("value", [0, -1])
def test_T1_refund_amounts_must_be_positive(value: int) -> None:
    with pytest.raises(InvalidInput) as exc:
        require_fen(value, "refund_fen")
    assert exc.value.rule == "T1"
    assert require_fen(0, "shipping_fee_fen", positive=False) == 0
    with pytest.raises(InvalidInput):
        require_fen(MAX_FEN + 1, "refund_fen")


@pytest.mark.parametrize("refund_fen", [2500.0, 0, -100, True])
def test_T1_refund_request_that_is_not_a_positive_integer_is_refused(refund_fen: object) -> None:
    order = delivered_order()
    before = snapshot(order)
    with pytest.raises(InvalidInput) as exc:
        open_case(order, case_id="c1", actor=Actor.BUYER, case_type=CaseType.REFUND_ONLY, reason=Reason.QUALITY_PROBLEM,
                  now=DAY_10, policy=policy(), categories=categories(), refund_fen=refund_fen)  # type: ignore[arg-type]
    assert exc.value.rule == "T1"
    assert order == before


def test_T1_excessive_amount_is_an_error_never_capped() -> None:
    order = delivered_order()
    before = snapshot(order)
    with pytest.raises(RuleViolation) as exc:
        new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10, items={"sku-a": 1}, refund_fen=10001)
    assert exc.value.rule == "E10"
    assert exc.value.msg.params == {"requested_fen": 10001, "left_fen": 10000}
    assert order == before, "the request is refused, not reduced to what is left"


def test_T1_order_amounts_are_integer_fen() -> None:
    with pytest.raises(InvalidInput) as exc:
        paid_order(items=[item(unit_price_fen=99.9)])  # type: ignore[arg-type]
    assert exc.value.rule == "T1"
    with pytest.raises(InvalidInput) as exc:
        paid_order(shipping_fee_fen=-1)
    assert exc.value.rule == "T1"
    with pytest.raises(InvalidInput) as exc:
        new_order(id="o", merchant_id="m", buyer_id="b", paid_at=PAID, shipping_fee_fen=8.0,  # type: ignore[arg-type]
                  items=[item()])
    assert exc.value.rule == "T1"
    order = paid_order()
    assert order.paid_fen == PAID_FEN and isinstance(order.paid_fen, int)


@pytest.mark.parametrize(
    ("total", "weights"),
    [(1000, [3333, 6667]), (1, [1, 1, 1]), (9999, [10000, 1, 1]), (3, [1, 1, 1]), (0, [5, 7])],
)
def test_T1_proportional_split_is_exact_integer_fen(total: int, weights: list[int]) -> None:
    shares = split_proportionally(total, weights)
    assert sum(shares) == total
    assert all(isinstance(s, int) and 0 <= s <= w for s, w in zip(shares, weights, strict=True))


def test_T1_split_never_exceeds_the_weights() -> None:
    with pytest.raises(ValueError):
        split_proportionally(11, [5, 5])


def test_T1_partial_refund_over_several_items_is_exact_integer_fen() -> None:
    pol = policy()
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_10, refund_fen=3333, pol=pol)
    act(order, case.id, Action.APPROVE, Actor.MERCHANT, DAY_10 + hours(1), pol)
    (refund,) = case.refunds(order)
    assert refund.amount_fen == 3333 and refund.shipping_fen == 0
    assert all(isinstance(v, int) for v in refund.goods.values())
    assert sum(refund.goods.values()) == 3333


# --- T2 -------------------------------------------------------------------------------------------------
def test_T2_every_event_records_actor_instant_and_rule_ids() -> None:
    pol = policy()
    group, orders = group_with_orders(size=2, members=2, pol=pol)
    order = orders[0]
    order.ship(Actor.MERCHANT, "SF", "SF1", SHIPPED)
    order.deliver(Actor.SYSTEM, DELIVERED, DELIVERED)
    case = new_case(order, CaseType.RETURN_REFUND, Reason.QUALITY_PROBLEM, DAY_3, pol=pol, group=group)
    act(order, case.id, Action.REJECT, Actor.MERCHANT, DAY_3 + hours(1), pol, reason="Looks fine on the photo")
    act(order, case.id, Action.RESUBMIT, Actor.BUYER, DAY_3 + hours(2), pol, description="Second photo attached")
    assert case.deadline is not None
    for timer in case.timers():
        assert fire(order, case.id, timer.action, timer.stage, timer.due_at, pol)
    assert case.status is CaseStatus.AWAITING_RETURN_SHIPMENT
    act(order, case.id, Action.SHIP_RETURN, Actor.BUYER, DAY_10, pol, carrier="YTO", tracking_no="YT1", shipping_fee_fen=1200)
    act(order, case.id, Action.MARK_RETURN_DELIVERED, Actor.PLATFORM, DAY_10 + hours(30), pol)
    act(order, case.id, Action.CONFIRM_RETURN, Actor.MERCHANT, DAY_10 + hours(40), pol)
    (refund,) = case.refunds(order)
    order.settle_refund(refund.key, DAY_10 + hours(41))
    assert case.status is CaseStatus.CLOSED

    events = [*group.pending_events, *(e for o in orders for e in o.pending_events)]
    assert len(events) > 15
    for event in events:
        assert isinstance(event.actor, Actor), event
        assert event.at.tzinfo is not None, event
        assert event.rules and all(RULE_ID.match(r) for r in event.rules), event
    kinds = {e.kind: e.actor for e in order.pending_events}
    assert kinds["auto_approve"] is Actor.SYSTEM
    assert kinds["remind_merchant"] is Actor.SYSTEM
    assert kinds["reject"] is Actor.MERCHANT
    assert kinds["resubmit"] is Actor.BUYER
    assert kinds["mark_return_delivered"] is Actor.PLATFORM


def test_T2_automatic_actions_are_the_systems_at_the_due_instant() -> None:
    pol = policy()
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.NOT_AS_DESCRIBED, DAY_3, pol=pol)
    due = case.due_at
    assert due is not None
    assert fire(order, case.id, Auto.AUTO_APPROVE, case.stage, due + hours(7), pol)
    event = next(e for e in order.pending_events if e.kind == "auto_approve")
    assert event.actor is Actor.SYSTEM and event.at == due
    assert event.rules == ("M1", "F1")  # the refund it orders cites F1, as the merchant's own approve does


@pytest.mark.parametrize(
    ("action", "actor", "params"),
    [
        (Action.APPROVE, Actor.BUYER, {}),
        (Action.REJECT, Actor.PLATFORM, {"reason": "no"}),
        (Action.CANCEL, Actor.MERCHANT, {}),
        (Action.OFFER_PARTIAL_REFUND, Actor.BUYER, {"refund_fen": 100}),
        (Action.APPROVE, Actor.SYSTEM, {}),
    ],
)
def test_T2_an_actor_may_take_only_its_own_actions(action: Action, actor: Actor, params: dict[str, object]) -> None:
    pol = policy()
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_3, pol=pol)
    before = snapshot(order)
    with pytest.raises(NotPermitted) as exc:
        act(order, case.id, action, actor, DAY_3 + hours(1), pol, **params)
    assert exc.value.rule == "T2"
    assert order == before


def test_T2_only_buyer_or_merchant_opens_and_only_merchant_ships() -> None:
    order = delivered_order()
    before = snapshot(order)
    with pytest.raises(NotPermitted) as exc:
        new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_3, actor=Actor.PLATFORM)
    assert exc.value.rule == "T2"
    assert order == before
    fresh = paid_order("o2")
    with pytest.raises(NotPermitted) as exc:
        fresh.ship(Actor.BUYER, "SF", "SF2", SHIPPED)
    assert exc.value.rule == "T2"
    assert fresh.status is OrderStatus.AWAITING_SHIPMENT


def test_T2_an_action_on_a_stale_version_is_refused_and_changes_nothing() -> None:
    pol = policy()
    order = delivered_order()
    case = new_case(order, CaseType.REFUND_ONLY, Reason.QUALITY_PROBLEM, DAY_3, pol=pol)
    seen = case.version
    act(order, case.id, Action.OFFER_PARTIAL_REFUND, Actor.MERCHANT, DAY_3 + hours(1), pol, expected_version=seen,
        refund_fen=1000)
    before = snapshot(order)
    with pytest.raises(StateConflict) as exc:
        act(order, case.id, Action.ACCEPT_OFFER, Actor.BUYER, DAY_3 + hours(2), pol, expected_version=seen)
    assert exc.value.rule == "T2"
    assert order == before
    act(order, case.id, Action.ACCEPT_OFFER, Actor.BUYER, DAY_3 + hours(2), pol, expected_version=case.version)
    assert case.status is CaseStatus.REFUND_PENDING
