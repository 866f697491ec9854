"""Orders (§1, §2) and the money that leaves them (E10, F1).

The order is the aggregate root for its cases: E8 (cancellations per order), E9 (one open case per order)
and E10 (refunded ≤ paid per item and per order) are order-level invariants, so every case action loads and
locks its order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from .catalog import Category
from .errors import DomainError, InvalidInput, NotPermitted, RuleViolation, StateConflict
from .events import Actor, Event
from .messages import N_
from .money import MAX_FEN, require_fen
from .timeutil import require_aware

if TYPE_CHECKING:
    from .cases import Case


class OrderStatus(StrEnum):
    GROUP_PENDING = "group_pending"
    AWAITING_SHIPMENT = "awaiting_shipment"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class Payer(StrEnum):
    """Who pays a refund out: the merchant, or the platform in advance (P2)."""

    MERCHANT = "merchant"
    PLATFORM = "platform"


class RefundKind(StrEnum):
    CASE = "case"
    GROUP_FAILURE = "group_failure"
    RETURN_SHIPPING = "return_shipping"
    COMPLAINT = "complaint"  # K2: a refund the platform grants when it upholds a complaint (paid in advance, P2)


class RefundStatus(StrEnum):
    PENDING = "pending"
    SETTLED = "settled"


@dataclass(slots=True)
class OrderItem:
    sku: str
    title: str
    category: str
    quantity: int
    unit_price_fen: int
    exclusion_confirmed: bool = False

    @property
    def total_fen(self) -> int:
        return self.quantity * self.unit_price_fen


@dataclass(slots=True)
class Refund:
    """One payment back to the buyer. ``key`` is the idempotency key the payment side sees (F1)."""

    key: str
    kind: RefundKind
    payer: Payer
    rule: str
    created_at: datetime
    case_id: str | None = None
    goods: dict[str, int] = field(default_factory=dict)
    shipping_fen: int = 0
    return_shipping_fen: int = 0
    status: RefundStatus = RefundStatus.PENDING
    settled_at: datetime | None = None

    @property
    def goods_fen(self) -> int:
        return sum(self.goods.values())

    @property
    def refund_fen(self) -> int:
        """What counts against the order's paid amount (goods + order shipping)."""
        return self.goods_fen + self.shipping_fen

    @property
    def amount_fen(self) -> int:
        """Everything paid to the buyer, return-shipping reimbursement included."""
        return self.refund_fen + self.return_shipping_fen


@dataclass(slots=True)
class Order:
    id: str
    merchant_id: str
    buyer_id: str
    paid_at: datetime
    shipping_fee_fen: int
    items: list[OrderItem]
    return_shipping_insured: bool = False
    group_id: str | None = None
    status: OrderStatus = OrderStatus.AWAITING_SHIPMENT
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    carrier: str | None = None
    tracking_no: str | None = None
    cancelled_at: datetime | None = None
    buyer_cancellations: int = 0
    refunds: list[Refund] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    #: E4–E6 terms fixed at purchase: the terms (with their version) of each category of the order, as in force at
    #: ``paid_at``. Eligibility reads these, never the category as it is now. Empty only for an order built outside
    #: the service (unit tests), which then follows the categories it is given.
    terms: dict[str, Category] = field(default_factory=dict)
    #: The platform policy version (:func:`aftersales.domain.policy.version_id`) in force when the order was recorded;
    #: its parameters judge the order's windows, deadlines and automatic actions for ever.
    policy_version: str | None = None
    version: int = 1
    pending_events: list[Event] = field(default_factory=list)

    # --- derived money -------------------------------------------------------------------------------
    @property
    def paid_fen(self) -> int:
        return self.goods_paid_fen + self.shipping_fee_fen

    @property
    def goods_paid_fen(self) -> int:
        return sum(i.total_fen for i in self.items)

    @property
    def refunded_fen(self) -> int:
        return sum(r.refund_fen for r in self.refunds)

    def refunded_goods(self, sku: str) -> int:
        return sum(r.goods.get(sku, 0) for r in self.refunds)

    @property
    def refunded_shipping_fen(self) -> int:
        return sum(r.shipping_fen for r in self.refunds)

    def item(self, sku: str) -> OrderItem:
        for item in self.items:
            if item.sku == sku:
                return item
        raise InvalidInput("E10", N_("The order has no item {sku}."), sku=sku)

    def remaining_goods(self, sku: str) -> int:
        """E10: what may still be refunded for one item line."""
        return self.item(sku).total_fen - self.refunded_goods(sku)

    @property
    def remaining_shipping_fen(self) -> int:
        return self.shipping_fee_fen - self.refunded_shipping_fen

    @property
    def remaining_fen(self) -> int:
        return self.paid_fen - self.refunded_fen

    @property
    def before_delivery(self) -> bool:
        """E2/E3: paid and not delivered yet (the group formed): the stage where E10 refunds the shipping fee."""
        return self.status in (OrderStatus.AWAITING_SHIPMENT, OrderStatus.SHIPPED)

    def open_case(self) -> Case | None:
        """E9: the order's open case, if any."""
        for case in self.cases:
            if not case.is_closed:
                return case
        return None

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise InvalidInput("E9", N_("The order has no case {case_id}."), case_id=case_id)

    # --- lifecycle -----------------------------------------------------------------------------------
    def record(self, kind: str, actor: Actor, at: datetime, rules: tuple[str, ...], **data: object) -> None:
        self.pending_events.append(Event(kind, actor, at, rules, order_id=self.id, group_id=self.group_id, data=dict(data)))

    def allowed_actions(self, actor: Actor) -> list[OrderAction]:
        """The actions on the order ``actor`` can take now: those of :data:`ORDER_ACTIONS` whose actors include
        ``actor`` and whose guards pass — the same checks :meth:`ship` and :meth:`deliver` refuse with."""
        out = []
        for action in OrderAction:
            try:
                self._check(action, actor)
            except DomainError:
                continue
            out.append(action)
        return out

    def _check(self, action: OrderAction, actor: Actor) -> None:
        actors, not_yours, guards = ORDER_ACTIONS[action]
        if actor not in actors:
            raise NotPermitted("T2", not_yours)
        for guard in guards:
            guard(self)

    def ship(self, actor: Actor, carrier: str, tracking_no: str, now: datetime) -> None:
        """The merchant ships the order; G2: never while its group is pending."""
        self._check(OrderAction.SHIP, actor)
        if not carrier.strip() or not tracking_no.strip():
            raise InvalidInput("E3", N_("A shipment needs a carrier and a tracking number."))
        self.status = OrderStatus.SHIPPED
        self.shipped_at = now
        self.carrier, self.tracking_no = carrier, tracking_no
        self.version += 1
        self.record("order_shipped", actor, now, ("E3",), carrier=carrier, tracking_no=tracking_no)

    def deliver(self, actor: Actor, at: datetime, now: datetime) -> None:
        """Record delivery; windows of E4–E6 count from its local day (T0). S6: invite the buyer to ask first."""
        self._check(OrderAction.DELIVER, actor)
        at = require_aware(at, "at")
        if self.shipped_at is not None and at < self.shipped_at:
            raise InvalidInput("T0", N_("Delivery cannot come before shipment."))
        if at > now:
            raise InvalidInput("T0", N_("Delivery cannot be recorded in the future."))
        self.status = OrderStatus.DELIVERED
        self.delivered_at = at
        self.version += 1
        self.record("order_delivered", actor, now, ("E4", "S6"), delivered_at=at.isoformat())

    def cancel_for_group_failure(self, now: datetime) -> Refund:
        """G4: an unformed group's order is cancelled and refunded in full (items + shipping), once."""
        if self.status is not OrderStatus.GROUP_PENDING:
            raise StateConflict("G4", N_("Only an order of a pending group is cancelled when the group fails."))
        refund = self.issue_refund(
            key=f"group-failure:{self.id}",
            kind=RefundKind.GROUP_FAILURE,
            payer=Payer.MERCHANT,
            rule="G4",
            now=now,
            goods={i.sku: self.remaining_goods(i.sku) for i in self.items},
            shipping_fen=self.remaining_shipping_fen,
            actor=Actor.SYSTEM,
        )
        self.status = OrderStatus.CANCELLED
        self.cancelled_at = now
        self.record("order_cancelled", Actor.SYSTEM, now, ("G4",))
        return refund

    # --- money ---------------------------------------------------------------------------------------
    def issue_refund(
        self,
        *,
        key: str,
        kind: RefundKind,
        payer: Payer,
        rule: str,
        now: datetime,
        actor: Actor,
        goods: dict[str, int],
        shipping_fen: int = 0,
        return_shipping_fen: int = 0,
        case_id: str | None = None,
    ) -> Refund:
        """Commit a refund. E10: never more than what is left per item and for shipping; T1: never capped."""
        if any(r.key == key for r in self.refunds):
            raise StateConflict("F1", N_("Refund {key} was already issued."), key=key)
        for sku, amount in goods.items():
            if amount < 0 or amount > self.remaining_goods(sku):
                raise RuleViolation(
                    "E10",
                    N_("A refund of {amount_fen} for {sku} exceeds the {left_fen} left to refund for it."),
                    amount_fen=amount,
                    sku=sku,
                    left_fen=self.remaining_goods(sku),
                )
        if shipping_fen < 0 or shipping_fen > self.remaining_shipping_fen:
            raise RuleViolation("E10", N_("The shipping fee can be refunded only once."))
        if return_shipping_fen < 0 or return_shipping_fen > MAX_FEN:
            raise InvalidInput("T1", N_("{field} must not be negative."), field="return_shipping_fen")
        refund = Refund(
            key=key,
            kind=kind,
            payer=payer,
            rule=rule,
            created_at=now,
            case_id=case_id,
            goods={s: a for s, a in goods.items() if a},
            shipping_fen=shipping_fen,
            return_shipping_fen=return_shipping_fen,
        )
        if refund.amount_fen <= 0:
            raise InvalidInput("T1", N_("{field} must be a positive amount of fen."), field="refund_fen")
        self.refunds.append(refund)
        self.version += 1
        if self.status in (OrderStatus.AWAITING_SHIPMENT, OrderStatus.SHIPPED) and self.remaining_fen == 0:
            # E2/E3: a whole-order refund before delivery cancels the order; the merchant must not ship it.
            self.status = OrderStatus.CANCELLED
            self.cancelled_at = now
        self.pending_events.append(
            Event(
                "refund_issued",
                actor,
                now,
                (rule, "F1", "E10"),
                order_id=self.id,
                case_id=case_id,
                group_id=self.group_id,
                data={"key": key, "amount_fen": refund.amount_fen, "refund_fen": refund.refund_fen,
                      "return_shipping_fen": return_shipping_fen, "payer": str(payer)},
            )
        )
        return refund

    def refund(self, key: str) -> Refund:
        for r in self.refunds:
            if r.key == key:
                return r
        raise InvalidInput("F1", N_("No refund {key} on this order."), key=key)

    def settle_refund(self, key: str, now: datetime) -> bool:
        """F1: the payment side confirmed ``key``. Returns False when it was already settled (a duplicate answer)."""
        refund = self.refund(key)
        if refund.status is RefundStatus.SETTLED:
            return False
        refund.status = RefundStatus.SETTLED
        refund.settled_at = now
        self.version += 1
        self.pending_events.append(
            Event("refund_settled", Actor.SYSTEM, now, ("F1",), order_id=self.id, case_id=refund.case_id,
                  group_id=self.group_id, data={"key": key, "amount_fen": refund.amount_fen})
        )
        if refund.case_id is not None:
            self.case(refund.case_id).on_refund_settled(self, refund, now)
        return True


# --- people's actions on an order: who may take them, and their guards ---------------------------------------
class OrderAction(StrEnum):
    SHIP = "ship"
    DELIVER = "deliver"


def group_formed(order: Order) -> None:
    """G2: an order of a group that has not formed cannot be shipped."""
    if order.status is OrderStatus.GROUP_PENDING:
        raise StateConflict("G2", N_("The group has not formed yet, so the order cannot be shipped."))


def awaiting_shipment(order: Order) -> None:
    """E3: only an order awaiting shipment ships (once)."""
    if order.status is not OrderStatus.AWAITING_SHIPMENT:
        raise StateConflict("E3", N_("The order is {status} and cannot be shipped."), status=str(order.status))


def in_transit(order: Order) -> None:
    """E4: only a shipped order is delivered (once)."""
    if order.status is not OrderStatus.SHIPPED:
        raise StateConflict("E4", N_("Only a shipped order can be delivered; this one is {status}."), status=str(order.status))


#: Each action: who may take it (and the refusal of anyone else, T2), then its guards in order.
ORDER_ACTIONS: dict[OrderAction, tuple[frozenset[Actor], str, tuple[Callable[[Order], None], ...]]] = {
    OrderAction.SHIP: (frozenset({Actor.MERCHANT, Actor.PLATFORM}), N_("Only the merchant ships an order."),
                       (group_formed, awaiting_shipment)),
    OrderAction.DELIVER: (frozenset({Actor.MERCHANT, Actor.PLATFORM, Actor.SYSTEM}),
                          N_("Only the merchant, the carrier feed or the platform records delivery."), (in_transit,)),
}


def new_order(
    *,
    id: str,
    merchant_id: str,
    buyer_id: str,
    paid_at: datetime,
    shipping_fee_fen: int,
    items: list[OrderItem],
    return_shipping_insured: bool = False,
    group_id: str | None = None,
    terms: dict[str, Category] | None = None,
    policy_version: str | None = None,
) -> Order:
    """Validate and create a paid order (T0, T1). Group orders start pending; the group decides (G1–G3)."""
    paid_at = require_aware(paid_at, "paid_at")
    require_fen(shipping_fee_fen, "shipping_fee_fen", positive=False)
    if not items:
        raise InvalidInput("E10", N_("An order needs at least one item."))
    seen: set[str] = set()
    for item in items:
        if item.sku in seen:
            raise InvalidInput("E10", N_("Item {sku} appears twice; give one line per sku."), sku=item.sku)
        seen.add(item.sku)
        if isinstance(item.quantity, bool) or not isinstance(item.quantity, int) or not 0 < item.quantity <= 100000:
            raise InvalidInput("E10", N_("{field} must be a whole number between 1 and 100000."), field="quantity")
        require_fen(item.unit_price_fen, "unit_price_fen")
    order = Order(
        id=id,
        merchant_id=merchant_id,
        buyer_id=buyer_id,
        paid_at=paid_at,
        shipping_fee_fen=shipping_fee_fen,
        items=items,
        return_shipping_insured=return_shipping_insured,
        group_id=group_id,
        status=OrderStatus.GROUP_PENDING if group_id else OrderStatus.AWAITING_SHIPMENT,
        terms={i.category: terms[i.category] for i in items if i.category in terms} if terms else {},
        policy_version=policy_version,
    )
    paid = order.paid_fen  # summed over the items once
    require_fen(paid, "paid_fen")
    order.record("order_paid", Actor.BUYER, paid_at, ("G1",) if group_id else ("E2",), paid_fen=paid)
    return order
