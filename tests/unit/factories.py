"""Small, explicit builders for the domain unit tests.

Every state is built by the same calls production code makes (``new_order``, ``ship``, ``deliver``,
``open_group``, ``open_case``, ``act``) at instants given by the test; nothing is random.
Default instants follow RULEBOOK T0's worked example: paid and delivered on local day 2026-03-01
(Asia/Shanghai), delivered at 23:30 local time.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from aftersales.domain.cases import Action, Case, act
from aftersales.domain.catalog import CaseType, Category, Reason, StatutoryExclusion
from aftersales.domain.events import Actor, Event
from aftersales.domain.groups import Group, open_group
from aftersales.domain.opening import open_case
from aftersales.domain.orders import Order, OrderItem, new_order
from aftersales.domain.policy import Policy, validate


# --- instants ------------------------------------------------------------------------------------------
def t(text: str) -> datetime:
    """An aware instant from RFC 3339 text; a naive text is a mistake in the test itself."""
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, f"naive instant in a test: {text}"
    return value


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


PAID = t("2026-03-01T10:00:00+08:00")
SHIPPED = t("2026-03-01T18:00:00+08:00")
DELIVERED = t("2026-03-01T23:30:00+08:00")
#: End (exclusive) of the 7-day no-reason window after DELIVERED (T0 worked example).
NO_REASON_END = t("2026-03-09T00:00:00+08:00")
#: End (exclusive) of the 15-day after-sales window after DELIVERED.
AFTER_SALES_END = t("2026-03-17T00:00:00+08:00")
#: A moment inside the no-reason window.
DAY_3 = t("2026-03-04T10:00:00+08:00")
#: A moment after the no-reason window, inside the after-sales window.
DAY_10 = t("2026-03-11T10:00:00+08:00")
#: A moment after the after-sales window.
DAY_20 = t("2026-03-21T10:00:00+08:00")


# --- policy and catalogue -------------------------------------------------------------------------------
def policy(**overrides: Any) -> Policy:
    """The shipped defaults with ``overrides``, validated like a policy file."""
    return validate(dict(overrides))


def categories() -> dict[str, Category]:
    """A catalogue with every kind of category E4–E6 distinguish."""
    cats = [
        Category("general", "General goods"),
        Category("electrical", "Household electrical goods", warranty_days=365),
        Category("furniture", "Furniture", after_sales_days=30),
        Category("fresh", "Fresh food", statutory_exclusion=StatutoryExclusion.PERISHABLE),
        Category("custom", "Custom-made goods", statutory_exclusion=StatutoryExclusion.CUSTOM_MADE),
        Category("digital", "Unsealed software and media", statutory_exclusion=StatutoryExclusion.DIGITAL),
        Category("periodical", "Newspapers and periodicals", statutory_exclusion=StatutoryExclusion.PERIODICAL),
        # The shop's own exclusion (not the law's): binds only when the buyer confirmed it at purchase.
        Category("underwear", "Underwear", no_reason_return=False),
    ]
    return {c.code: c for c in cats}


STATUTORY = ("fresh", "custom", "digital", "periodical")


# --- orders ---------------------------------------------------------------------------------------------
def item(
    sku: str = "sku-a",
    *,
    category: str = "general",
    quantity: int = 1,
    unit_price_fen: int = 10000,
    exclusion_confirmed: bool = False,
) -> OrderItem:
    return OrderItem(sku, f"Item {sku}", category, quantity, unit_price_fen, exclusion_confirmed)


def two_items() -> list[OrderItem]:
    """sku-a: 1 x 100.00; sku-b: 2 x 50.00 — goods 200.00."""
    return [item("sku-a"), item("sku-b", quantity=2, unit_price_fen=5000)]


SHIPPING_FEN = 800
#: What the default order paid: goods 20000 + shipping 800.
PAID_FEN = 20800


def paid_order(
    order_id: str = "o1",
    *,
    items: list[OrderItem] | None = None,
    shipping_fee_fen: int = SHIPPING_FEN,
    paid_at: datetime = PAID,
    insured: bool = False,
    merchant_id: str = "m1",
    buyer_id: str = "b1",
    group_id: str | None = None,
) -> Order:
    """A paid order awaiting shipment (or pending its group when ``group_id`` is given)."""
    order = new_order(
        id=order_id,
        merchant_id=merchant_id,
        buyer_id=buyer_id,
        paid_at=paid_at,
        shipping_fee_fen=shipping_fee_fen,
        items=items if items is not None else two_items(),
        return_shipping_insured=insured,
        group_id=group_id,
    )
    return order


def shipped_order(order_id: str = "o1", *, shipped_at: datetime = SHIPPED, **kw: Any) -> Order:
    order = paid_order(order_id, **kw)
    order.ship(Actor.MERCHANT, "SF Express", f"SF{order_id}", shipped_at)
    return order


def delivered_order(order_id: str = "o1", *, delivered_at: datetime = DELIVERED, shipped_at: datetime = SHIPPED,
                    **kw: Any) -> Order:
    order = shipped_order(order_id, shipped_at=shipped_at, **kw)
    order.deliver(Actor.SYSTEM, delivered_at, delivered_at)
    return order


def group_with_orders(
    group_id: str = "g1",
    *,
    size: int = 3,
    members: int = 1,
    auto_complete: bool = False,
    paid_at: datetime = PAID,
    pol: Policy | None = None,
) -> tuple[Group, list[Order]]:
    """A pending group of ``size`` opened by the first of ``members`` paid orders (each paid a minute apart)."""
    pol = pol or policy()
    first = paid_order(f"{group_id}-o1", paid_at=paid_at, group_id=group_id, buyer_id="b1")
    group = open_group(id=group_id, merchant_id=first.merchant_id, size=size, auto_complete=auto_complete,
                       first=first, policy=pol)
    orders = [first]
    for n in range(2, members + 1):
        at = paid_at + timedelta(minutes=n - 1)
        order = paid_order(f"{group_id}-o{n}", paid_at=at, group_id=group_id, buyer_id=f"b{n}")
        group.join(order, at, list(orders))
        orders.append(order)
    return group, orders


# --- cases ----------------------------------------------------------------------------------------------
def new_case(
    order: Order,
    case_type: CaseType | str,
    reason: Reason | str,
    now: datetime,
    *,
    pol: Policy | None = None,
    case_id: str | None = None,
    actor: Actor = Actor.BUYER,
    cats: Mapping[str, Category] | None = None,
    group: Group | None = None,
    items: dict[str, int] | None = None,
    refund_fen: int | None = None,
    buyer_consent: bool = False,
) -> Case:
    """Open a case through eligibility, as the service does."""
    return open_case(
        order,
        case_id=case_id or f"{order.id}-c{len(order.cases) + 1}",
        actor=actor,
        case_type=case_type,
        reason=reason,
        now=now,
        policy=pol or policy(),
        categories=cats if cats is not None else categories(),
        group=group,
        items=items,
        refund_fen=refund_fen,
        buyer_consent=buyer_consent,
    )


def approved_return(
    order: Order,
    reason: Reason = Reason.QUALITY_PROBLEM,
    *,
    opened_at: datetime = DAY_3,
    approved_at: datetime | None = None,
    case_type: CaseType = CaseType.RETURN_REFUND,
    pol: Policy | None = None,
    **params: Any,
) -> Case:
    """A return the merchant approved (M1), waiting for the buyer to ship it (M5)."""
    pol = pol or policy()
    case = new_case(order, case_type, reason, opened_at, pol=pol)
    return act(order, case.id, Action.APPROVE, Actor.MERCHANT, approved_at or opened_at + hours(2), pol, **params)


# --- inspection -----------------------------------------------------------------------------------------
def snapshot(obj: Any) -> Any:
    """A deep copy to compare with after a refused action: a refusal changes nothing."""
    return copy.deepcopy(obj)


def case_events(order: Order, case_id: str) -> list[Event]:
    return [e for e in order.pending_events if e.case_id == case_id]


def last_event(order: Order) -> Event:
    return order.pending_events[-1]
