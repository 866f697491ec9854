"""The after-sales case: one aggregate, one explicit transition table (M1–M8, C1, F1, P1, P2).

A case lives inside its order (the aggregate root for money, E8–E10). Every action goes through
:func:`act`; every automatic action through :func:`fire`. Both check the transition table, record an event
with actor, instant and rule ids, and set the next deadline.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from .addresses import ReturnAddress
from .catalog import CaseType, Reason, is_merchant_responsibility
from .errors import DomainError, InvalidInput, NotPermitted, RuleViolation, StateConflict
from .events import Actor, Event
from .messages import N_, Msg
from .money import require_fen, split_proportionally
from .orders import Order, Payer, Refund, RefundKind, RefundStatus
from .policy import Policy
from .timeutil import after_hours, window_end

MAX_TEXT = 2000


class CaseStatus(StrEnum):
    AWAITING_MERCHANT = "awaiting_merchant"
    AWAITING_BUYER = "awaiting_buyer"
    AWAITING_RETURN_SHIPMENT = "awaiting_return_shipment"
    RETURN_IN_TRANSIT = "return_in_transit"
    AWAITING_MERCHANT_RECEIPT = "awaiting_merchant_receipt"
    AWAITING_REPLACEMENT_SHIPMENT = "awaiting_replacement_shipment"
    REPLACEMENT_IN_TRANSIT = "replacement_in_transit"
    PLATFORM_REVIEW = "platform_review"
    #: Extension of API.md: money was ordered back and waits for the payment side to confirm (F1).
    REFUND_PENDING = "refund_pending"
    CLOSED = "closed"


class CloseReason(StrEnum):
    REFUNDED = "refunded"
    EXCHANGED = "exchanged"
    RESHIPPED = "reshipped"
    REPAIRED = "repaired"
    CANCELLED = "cancelled"
    BUYER_OVERDUE = "buyer_overdue"
    REJECTED = "rejected"
    PLATFORM_REJECTED = "platform_rejected"
    ORDER_CANCELLED = "order_cancelled"


class Action(StrEnum):
    """Actions of people (API.md), plus two extensions: accept_rejection and mark_replacement_delivered."""

    APPROVE = "approve"
    REJECT = "reject"
    OFFER_EXCHANGE = "offer_exchange"
    OFFER_PARTIAL_REFUND = "offer_partial_refund"
    ACCEPT_OFFER = "accept_offer"
    DECLINE_OFFER = "decline_offer"
    SHIP_RETURN = "ship_return"
    MARK_RETURN_DELIVERED = "mark_return_delivered"
    CONFIRM_RETURN = "confirm_return"
    REJECT_RETURN = "reject_return"
    SHIP_REPLACEMENT = "ship_replacement"
    MARK_REPLACEMENT_DELIVERED = "mark_replacement_delivered"
    CONFIRM_RECEIVED = "confirm_received"
    RESUBMIT = "resubmit"
    ACCEPT_REJECTION = "accept_rejection"
    CANCEL = "cancel"
    ESCALATE = "escalate"
    RULE = "rule"
    PAY_RULING = "pay_ruling"
    ADVANCE_COMPENSATE = "advance_compensate"


class Auto(StrEnum):
    """Automatic actions the system takes when a deadline passes (actor ``system``)."""

    REMIND_MERCHANT = "remind_merchant"  # M1
    AUTO_APPROVE = "auto_approve"  # M1
    CLOSE_UNANSWERED = "close_unanswered"  # M2
    LAPSE_OFFER = "lapse_offer"  # M4 / M8
    CLOSE_BUYER_OVERDUE = "close_buyer_overdue"  # M5
    RETURN_TIMEOUT = "return_timeout"  # M6
    SHIP_TIMEOUT = "ship_timeout"  # M7
    AUTO_CONFIRM_RECEIVED = "auto_confirm_received"  # M7
    FLAG_PLATFORM_OVERDUE = "flag_platform_overdue"  # P1
    ADVANCE_COMPENSATION = "advance_compensation"  # P2


S = CaseStatus
A = Action
B, M, P, SYS = Actor.BUYER, Actor.MERCHANT, Actor.PLATFORM, Actor.SYSTEM


def _t(actors: tuple[Actor, ...], *targets: CaseStatus) -> tuple[frozenset[Actor], frozenset[CaseStatus]]:
    return frozenset(actors), frozenset(targets)


#: The transition table: in a status, an action, who may take it, and the statuses it may lead to. What else must
#: hold for each action (an offer to answer, nothing moved yet, …) is its guards: ``case_guards.GUARDS``.
TRANSITIONS: dict[CaseStatus, dict[Action, tuple[frozenset[Actor], frozenset[CaseStatus]]]] = {
    S.AWAITING_MERCHANT: {
        A.APPROVE: _t((M,), S.REFUND_PENDING, S.AWAITING_RETURN_SHIPMENT, S.AWAITING_REPLACEMENT_SHIPMENT),
        A.REJECT: _t((M,), S.AWAITING_BUYER),
        A.OFFER_EXCHANGE: _t((M,), S.AWAITING_BUYER),
        A.OFFER_PARTIAL_REFUND: _t((M,), S.AWAITING_BUYER),
        A.CANCEL: _t((B,), S.CLOSED),
    },
    S.AWAITING_BUYER: {
        A.ACCEPT_OFFER: _t((B,), S.REFUND_PENDING, S.AWAITING_RETURN_SHIPMENT),
        A.DECLINE_OFFER: _t((B,), S.AWAITING_MERCHANT, S.AWAITING_RETURN_SHIPMENT),
        A.RESUBMIT: _t((B,), S.AWAITING_MERCHANT),
        A.ACCEPT_REJECTION: _t((B,), S.CLOSED),
        A.ESCALATE: _t((B,), S.PLATFORM_REVIEW),
        A.CANCEL: _t((B,), S.CLOSED),
    },
    S.AWAITING_RETURN_SHIPMENT: {
        A.SHIP_RETURN: _t((B,), S.RETURN_IN_TRANSIT),
        A.ESCALATE: _t((B,), S.PLATFORM_REVIEW),
        A.CANCEL: _t((B,), S.CLOSED),
    },
    S.RETURN_IN_TRANSIT: {
        A.MARK_RETURN_DELIVERED: _t((M, P, SYS), S.AWAITING_MERCHANT_RECEIPT, S.AWAITING_REPLACEMENT_SHIPMENT),
        A.CONFIRM_RETURN: _t((M,), S.REFUND_PENDING, S.AWAITING_REPLACEMENT_SHIPMENT),
        A.REJECT_RETURN: _t((M,), S.PLATFORM_REVIEW),
    },
    S.AWAITING_MERCHANT_RECEIPT: {
        A.CONFIRM_RETURN: _t((M,), S.REFUND_PENDING),
        A.REJECT_RETURN: _t((M,), S.PLATFORM_REVIEW),
    },
    S.AWAITING_REPLACEMENT_SHIPMENT: {
        A.SHIP_REPLACEMENT: _t((M,), S.REPLACEMENT_IN_TRANSIT),
        A.REJECT_RETURN: _t((M,), S.PLATFORM_REVIEW),
        A.CANCEL: _t((B,), S.CLOSED),
    },
    S.REPLACEMENT_IN_TRANSIT: {
        A.MARK_REPLACEMENT_DELIVERED: _t((M, P, SYS), S.REPLACEMENT_IN_TRANSIT),
        A.CONFIRM_RECEIVED: _t((B,), S.CLOSED),
    },
    S.PLATFORM_REVIEW: {
        A.RULE: _t((P,), S.PLATFORM_REVIEW, S.CLOSED),
        A.PAY_RULING: _t((M,), S.REFUND_PENDING),
        A.ADVANCE_COMPENSATE: _t((P,), S.REFUND_PENDING),
        A.CANCEL: _t((B,), S.CLOSED),
    },
    S.REFUND_PENDING: {},
    S.CLOSED: {},
}

#: Automatic actions per status, the rule that sets them, and where each may lead.
AUTO_TRANSITIONS: dict[CaseStatus, dict[Auto, frozenset[CaseStatus]]] = {
    S.AWAITING_MERCHANT: {
        Auto.REMIND_MERCHANT: frozenset({S.AWAITING_MERCHANT}),
        # F2 + E10: an automatic refund with nothing left to refund closes the case (see _refund_when_due).
        Auto.AUTO_APPROVE: frozenset({S.REFUND_PENDING, S.AWAITING_RETURN_SHIPMENT, S.AWAITING_REPLACEMENT_SHIPMENT, S.CLOSED}),
    },
    S.AWAITING_BUYER: {
        Auto.CLOSE_UNANSWERED: frozenset({S.CLOSED}),
        Auto.LAPSE_OFFER: frozenset({S.AWAITING_MERCHANT, S.AWAITING_RETURN_SHIPMENT}),
    },
    S.AWAITING_RETURN_SHIPMENT: {Auto.CLOSE_BUYER_OVERDUE: frozenset({S.CLOSED})},
    S.RETURN_IN_TRANSIT: {Auto.RETURN_TIMEOUT: frozenset({S.REFUND_PENDING, S.AWAITING_REPLACEMENT_SHIPMENT, S.CLOSED})},
    S.AWAITING_MERCHANT_RECEIPT: {Auto.RETURN_TIMEOUT: frozenset({S.REFUND_PENDING, S.CLOSED})},
    S.AWAITING_REPLACEMENT_SHIPMENT: {Auto.SHIP_TIMEOUT: frozenset({S.REFUND_PENDING, S.CLOSED})},
    S.REPLACEMENT_IN_TRANSIT: {Auto.AUTO_CONFIRM_RECEIVED: frozenset({S.CLOSED})},
    S.PLATFORM_REVIEW: {
        Auto.FLAG_PLATFORM_OVERDUE: frozenset({S.PLATFORM_REVIEW}),
        Auto.ADVANCE_COMPENSATION: frozenset({S.REFUND_PENDING, S.CLOSED}),
    },
    S.REFUND_PENDING: {},
    S.CLOSED: {},
}

AUTO_RULES: dict[Auto, str] = {
    Auto.REMIND_MERCHANT: "M1",
    Auto.AUTO_APPROVE: "M1",
    Auto.CLOSE_UNANSWERED: "M2",
    Auto.LAPSE_OFFER: "M8",
    Auto.CLOSE_BUYER_OVERDUE: "M5",
    Auto.RETURN_TIMEOUT: "M6",
    Auto.SHIP_TIMEOUT: "M7",
    Auto.AUTO_CONFIRM_RECEIVED: "M7",
    Auto.FLAG_PLATFORM_OVERDUE: "P1",
    Auto.ADVANCE_COMPENSATION: "P2",
}

#: The move each deadline waits for: the action whose absence it answers (M1: the shop's answer; M2: the buyer's
#: resubmission; M4/M8: the buyer's answer to the offer; M5: the return parcel; M6: the shop's check of the return;
#: M7: the replacement, then the buyer's receipt; P1: the ruling; P2: the advance compensation).
AWAITED_ACTION: dict[Auto, Action] = {
    Auto.REMIND_MERCHANT: A.APPROVE,
    Auto.AUTO_APPROVE: A.APPROVE,
    Auto.CLOSE_UNANSWERED: A.RESUBMIT,
    Auto.LAPSE_OFFER: A.ACCEPT_OFFER,
    Auto.CLOSE_BUYER_OVERDUE: A.SHIP_RETURN,
    Auto.RETURN_TIMEOUT: A.CONFIRM_RETURN,
    Auto.SHIP_TIMEOUT: A.SHIP_REPLACEMENT,
    Auto.AUTO_CONFIRM_RECEIVED: A.CONFIRM_RECEIVED,
    Auto.FLAG_PLATFORM_OVERDUE: A.RULE,
    Auto.ADVANCE_COMPENSATION: A.ADVANCE_COMPENSATE,
}


def _awaited_party(auto: Auto) -> Actor:
    """The one person who may take ``auto``'s awaited action, read from :data:`TRANSITIONS` (the one table of who may
    move) in every status where ``auto`` runs; the import fails if that is not one party everywhere."""
    parties = {actor for status, autos in AUTO_TRANSITIONS.items() if auto in autos
               for actor in TRANSITIONS[status][AWAITED_ACTION[auto]][0] if actor is not Actor.SYSTEM}
    if len(parties) != 1:  # pragma: no cover - import-time check
        raise AssertionError(f"{auto} awaits {AWAITED_ACTION[auto]}, which not one party takes: {parties}")
    return parties.pop()


#: Whose silence each deadline answers: the party that must act before it passes, or the system acts for them
#: (M1, M6, M7: the shop; M2, M4/M8, M5, M7's receipt: the buyer; P1, P2: the platform) — derived from the
#: transition table through :data:`AWAITED_ACTION`, so that "whose move is it" has one source: who may take which
#: action (``case_guards.waits_for`` reads the same table). The buyer's pages mark an order "action needed" when its
#: open case awaits the buyer.
AWAITS: dict[Auto, Actor] = {auto: _awaited_party(auto) for auto in Auto}

RETURN_TYPES = frozenset({CaseType.RETURN_REFUND, CaseType.EXCHANGE, CaseType.REPAIR})
REFUND_TYPES = frozenset({CaseType.REFUND_ONLY, CaseType.RETURN_REFUND})


class ShippingPayer(StrEnum):
    """M3: who pays the return parcel."""

    BUYER = "buyer"
    MERCHANT = "merchant"
    INSURER = "insurer"


@dataclass(frozen=True, slots=True)
class Deadline:
    """The next automatic action of a case: what, when, under which rule, in which stage."""

    action: Auto
    due_at: datetime
    rule: str
    stage: int


@dataclass(slots=True)
class Offer:
    """M4 exchange or M8 partial refund, waiting for the buyer. The merchant's clock stays where it was."""

    kind: str  # "exchange" | "partial_refund"
    refund_fen: int | None
    made_at: datetime
    resume_due_at: datetime | None


@dataclass(slots=True)
class Ruling:
    """P1: the platform's decision and its rationale, shown to both sides."""

    outcome: str  # "refund" | "reject"
    refund_fen: int | None
    rationale: str
    at: datetime
    paid_by: Payer | None = None


@dataclass(slots=True)
class Case:
    id: str
    order_id: str
    merchant_id: str
    buyer_id: str
    type: CaseType
    reason: Reason
    items: dict[str, int]
    refund_fen: int | None
    includes_shipping: bool
    opened_by: Actor
    opened_at: datetime
    description: str = ""
    status: CaseStatus = CaseStatus.AWAITING_MERCHANT
    close_reason: CloseReason | None = None
    closed_at: datetime | None = None
    stage: int = 0
    due_action: Auto | None = None
    due_at: datetime | None = None
    reminders: tuple[datetime, ...] = ()
    fired: set[tuple[int, str]] = field(default_factory=set)
    first_response_at: datetime | None = None
    return_shipping_proposed: ShippingPayer | None = None
    return_shipping_payer: ShippingPayer | None = None
    return_shipping_disputed: bool = False
    #: M3: the return shipping the buyer stated (as stated, above the cap too) …
    return_shipping_fee_fen: int = 0
    #: … and what of it goes back to the buyer: up to the cap when the shop pays, else 0 (None: recorded before the
    #: cap was stated, when a cost above it was refused — then the whole stated cost).
    return_shipping_reimbursable_fen: int | None = None
    #: M1/M5: where the buyer sends the return, copied from the shop's address book when the return was approved
    #: (None: not approved yet, or the shop had no address then).
    return_address: ReturnAddress | None = None
    return_carrier: str | None = None
    return_tracking_no: str | None = None
    return_shipped_at: datetime | None = None
    return_delivered_at: datetime | None = None
    replacement_carrier: str | None = None
    replacement_tracking_no: str | None = None
    replacement_shipped_at: datetime | None = None
    replacement_delivered_at: datetime | None = None
    rejection_reason: str | None = None
    offer: Offer | None = None
    escalation_reason: str | None = None
    platform_overdue: bool = False
    ruling: Ruling | None = None
    version: int = 1

    # --- reading -------------------------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self.status is CaseStatus.CLOSED

    @property
    def deadline(self) -> Deadline | None:
        """The next automatic action that changes the case (reminders aside)."""
        if self.due_action is None or self.due_at is None:
            return None
        rule = AUTO_RULES[self.due_action]
        if self.due_action is Auto.LAPSE_OFFER and self.offer is not None and self.offer.kind == "exchange":
            rule = "M4"
        return Deadline(self.due_action, self.due_at, rule, self.stage)

    def awaiting(self) -> Actor | None:
        """Whose move it is: the party the running deadline waits for (``AWAITS``); None when no deadline runs."""
        return AWAITS[self.due_action] if self.due_action is not None and self.due_at is not None else None

    def timers(self) -> list[Deadline]:
        """Every automatic action still to come in this stage: M1 reminders, then the deadline."""
        out = [
            Deadline(Auto.REMIND_MERCHANT, at, "M1", self.stage)
            for at in self.reminders
            if (self.stage, f"{Auto.REMIND_MERCHANT}@{at.isoformat()}") not in self.fired
        ]
        if (d := self.deadline) is not None:
            out.append(d)
        return out

    @property
    def return_shipping_reimbursable(self) -> int:
        """M3: the return shipping the buyer gets back with the refund (capped when it was stated)."""
        if self.return_shipping_payer is not ShippingPayer.MERCHANT:
            return 0
        if self.return_shipping_reimbursable_fen is None:
            return self.return_shipping_fee_fen
        return self.return_shipping_reimbursable_fen

    def refunds(self, order: Order) -> list[Refund]:
        return [r for r in order.refunds if r.case_id == self.id]

    def refunded_fen(self, order: Order) -> int:
        return sum(r.amount_fen for r in self.refunds(order))

    def allowed_actions(self, actor: Actor, order: Order, policy: Policy) -> list[Action]:
        """Exactly the actions ``actor`` can take now: the table admits the actor in this status and every guard of
        the action passes (``case_guards``) — the same checks :func:`act` runs before refusing."""
        out = []
        for action, (actors, _) in TRANSITIONS[self.status].items():
            if actor not in actors:
                continue
            try:
                _guards.check(action, self, order, actor, policy)
            except DomainError:
                continue
            out.append(action)
        return out

    def max_refund_fen(self, order: Order) -> int:
        """E10: goods concerned still unrefunded, plus shipping where it is refundable."""
        goods = sum(self._goods_value(order).values())
        return goods + (order.remaining_shipping_fen if self.includes_shipping else 0)

    def on_refund_settled(self, order: Order, refund: Refund, now: datetime) -> None:
        """F1: the case closes as refunded once the payment side confirmed every refund it ordered."""
        if self.status is CaseStatus.REFUND_PENDING and all(r.status is RefundStatus.SETTLED for r in self.refunds(order)):
            before = self.status
            _close(self, CloseReason.REFUNDED, now)
            self.version += 1
            _event(order, self, "closed", Actor.SYSTEM, now, ("F1",), before, key=refund.key)

    def _goods_value(self, order: Order) -> dict[str, int]:
        values = {}
        for sku, qty in self.items.items():
            item = order.item(sku)
            values[sku] = min(item.unit_price_fen * qty, order.remaining_goods(sku))
        return values


# --- opening -------------------------------------------------------------------------------------------
def _text(value: str | None, field: str, *, required: bool = False, rule: str = "S4") -> str:
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput(rule, N_("{field} is required."), field=field)
    if len(value) > MAX_TEXT:
        raise InvalidInput(rule, N_("{field} is longer than {max} characters."), field=field, max=MAX_TEXT)
    return value


def start_case(
    order: Order,
    *,
    case_id: str,
    actor: Actor,
    case_type: CaseType,
    reason: Reason,
    allowed_reasons: tuple[Reason, ...],
    eligible_skus: tuple[str, ...],
    no_reason_skus: frozenset[str],
    items: dict[str, int] | None,
    refund_fen: int | None,
    description: str | None,
    now: datetime,
    policy: Policy,
    rule: str,
    exclusions: Mapping[str, Msg] | None = None,
) -> Case:
    """Open a case once eligibility has allowed its type (see ``aftersales.domain.opening``).

    ``exclusions``: why each line excluded from no-reason returns is (E4), to name it when one is asked for (S4)."""
    if reason not in allowed_reasons:
        raise RuleViolation(
            "E4" if reason is Reason.NO_REASON else rule,
            N_("The reason {reason} is not accepted for {type} now; accepted reasons: {reasons}."),
            reason=str(reason), type=str(case_type), reasons=", ".join(allowed_reasons),
        )
    before_delivery = order.before_delivery
    whole = {i.sku: i.quantity for i in order.items}
    if items is None:
        chosen = {sku: whole[sku] for sku in eligible_skus}
        if reason is Reason.NO_REASON:
            chosen = {sku: q for sku, q in chosen.items() if sku in no_reason_skus}
    else:
        chosen = {}
        for sku, qty in items.items():
            if sku not in whole:
                raise InvalidInput("E10", N_("The order has no item {sku}."), sku=sku)
            if isinstance(qty, bool) or not isinstance(qty, int) or not 0 < qty <= whole[sku]:
                raise InvalidInput("E10", N_("The quantity of {sku} must be between 1 and {max}."), sku=sku, max=whole[sku])
            if reason is Reason.NO_REASON and exclusions and sku in exclusions:
                raise RuleViolation("E4", N_("Item {sku} cannot be returned without a reason: {excluded}"),
                                    sku=sku, excluded=exclusions[sku])
            if sku not in eligible_skus or (reason is Reason.NO_REASON and sku not in no_reason_skus):
                raise RuleViolation(
                    "E4" if reason is Reason.NO_REASON else rule,
                    N_("Item {sku} is not eligible for this request."), sku=sku,
                )
            chosen[sku] = qty
        if before_delivery and chosen != whole:
            raise RuleViolation(rule, N_("Before delivery a refund covers the whole order."))
    if not chosen:
        raise RuleViolation(rule, N_("No item of the order is eligible for this request."))
    covers_all = chosen == whole
    includes_shipping = before_delivery or (
        case_type is CaseType.RETURN_REFUND and is_merchant_responsibility(reason) and covers_all
    )
    case = Case(
        id=case_id,
        order_id=order.id,
        merchant_id=order.merchant_id,
        buyer_id=order.buyer_id,
        type=case_type,
        reason=reason,
        items=chosen,
        refund_fen=None,
        includes_shipping=includes_shipping,
        opened_by=actor,
        opened_at=now,
        description=_text(description, "description"),
    )
    case.refund_fen = _requested_refund(case, order, refund_fen, before_delivery, rule)
    order.cases.append(case)
    order.version += 1
    _wait_for_merchant(case, now, policy)
    _event(order, case, "opened", actor, now, (rule, "E9", "E10"), None,
           type=str(case_type), reason=str(reason), refund_fen=case.refund_fen, items=dict(chosen),
           opened_on_behalf=actor is Actor.MERCHANT)
    return case


def require_within(amount: int, most: int) -> None:
    """E10 + T1: a refund above what is left is refused, never reduced."""
    if amount > most:
        raise RuleViolation(
            "E10",
            N_("The refund of {requested_fen} exceeds the {left_fen} left to refund for these items; it is not reduced automatically."),
            requested_fen=amount, left_fen=most,
        )


def _requested_refund(case: Case, order: Order, refund_fen: int | None, before_delivery: bool, rule: str) -> int | None:
    if case.type not in REFUND_TYPES:
        if refund_fen is not None:
            raise InvalidInput("E10", N_("{field} applies only to refund requests."), field="refund_fen")
        return None
    most = case.max_refund_fen(order)
    if refund_fen is None:
        return most
    require_fen(refund_fen, "refund_fen")
    require_within(refund_fen, most)
    if before_delivery and refund_fen != most:
        raise RuleViolation(rule, N_("Before delivery the refund is of the whole order: {left_fen}."), left_fen=most)
    return refund_fen


# --- helpers shared by handlers ------------------------------------------------------------------------
def _event(order: Order, case: Case, kind: str, actor: Actor, now: datetime, rules: tuple[str, ...],
           from_status: CaseStatus | None, **data: Any) -> None:
    order.pending_events.append(
        Event(kind, actor, now, rules, order_id=order.id, case_id=case.id, group_id=order.group_id,
              from_status=str(from_status) if from_status else None, to_status=str(case.status), data=data)
    )


def _enter(case: Case, status: CaseStatus, action: Auto | None = None, due_at: datetime | None = None) -> None:
    """Move to ``status`` with its automatic action; a new stage makes every older timer stale."""
    case.status = status
    case.stage += 1
    case.due_action, case.due_at = action, due_at
    case.reminders = ()
    if status is CaseStatus.CLOSED:
        case.due_action = case.due_at = None


def _wait_for_merchant(case: Case, now: datetime, policy: Policy, due_at: datetime | None = None) -> None:
    """M1: the merchant answers within ``merchant_response_hours``; reminders 12 h and 2 h before."""
    due = due_at or after_hours(now, policy.merchant_response_hours)
    _enter(case, CaseStatus.AWAITING_MERCHANT, Auto.AUTO_APPROVE, due)
    case.reminders = tuple(
        r for h in policy.merchant_reminder_hours if (r := after_hours(due, -h)) > now
    )


def _close(case: Case, reason: CloseReason, now: datetime) -> None:
    _enter(case, CaseStatus.CLOSED)
    case.close_reason = reason
    case.closed_at = now


def propose_shipping_payer(case: Case, order: Order) -> ShippingPayer:
    """M3: buyer for no-reason (insurer when the order is insured), merchant for its own responsibility."""
    if case.reason is Reason.NO_REASON:
        return ShippingPayer.INSURER if order.return_shipping_insured else ShippingPayer.BUYER
    if is_merchant_responsibility(case.reason):
        return ShippingPayer.MERCHANT
    return ShippingPayer.BUYER  # `other`: decided by the merchant, disputable


def _approve_return(case: Case, order: Order, now: datetime, policy: Policy, payer: ShippingPayer | None) -> None:
    """M3 + M5: the return is approved; the buyer ships within ``buyer_return_days``."""
    proposed = propose_shipping_payer(case, order)
    case.return_shipping_proposed = proposed
    case.return_shipping_payer = payer or proposed
    case.return_shipping_disputed = proposed is ShippingPayer.MERCHANT and case.return_shipping_payer is not ShippingPayer.MERCHANT
    _enter(case, CaseStatus.AWAITING_RETURN_SHIPMENT, Auto.CLOSE_BUYER_OVERDUE,
           window_end(now, policy.buyer_return_days, policy.timezone))


def returns_to_address(order: Order) -> list[tuple[Case, Event]]:
    """M1/M5: the returns approved in ``order``'s pending events that have no return address yet, with the event of
    their approval (whoever approved: the merchant, the system on its behalf, the buyer accepting an exchange)."""
    return [(order.case(e.case_id), e) for e in order.pending_events
            if e.case_id is not None and e.to_status == CaseStatus.AWAITING_RETURN_SHIPMENT
            and e.from_status != e.to_status and "return_address" not in e.data]


def ship_return_to(case: Case, approval: Event, address: ReturnAddress | None) -> None:
    """M5: the approved return goes to ``address``; the case and its approval's event keep a copy of the address as
    it is now, so that a later edit of the shop's address book does not rewrite the record. ``None``: the shop has
    no return address; the event says so (``return_address`` null) and the case shows none."""
    case.return_address = address
    approval.data["return_address"] = address.as_dict() if address is not None else None


def _await_replacement_shipment(case: Case, now: datetime, policy: Policy) -> None:
    _enter(case, CaseStatus.AWAITING_REPLACEMENT_SHIPMENT, Auto.SHIP_TIMEOUT, after_hours(now, policy.merchant_ship_hours))


def _after_approval(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy,
                    payer: ShippingPayer | None, rule: str) -> None:
    if case.type is CaseType.REFUND_ONLY:
        _issue_refund(case, order, actor, now, rule, case.refund_fen)
    elif case.type is CaseType.RESHIP:
        _await_replacement_shipment(case, now, policy)
    else:
        _approve_return(case, order, now, policy, payer)


def _return_shipping_due(case: Case, order: Order) -> int:
    """M3: merchant-paid return shipping not yet reimbursed."""
    paid = sum(r.return_shipping_fen for r in case.refunds(order))
    return case.return_shipping_reimbursable - paid


def _issue_refund(case: Case, order: Order, actor: Actor, now: datetime, rule: str, amount: int | None,
                  *, payer: Payer = Payer.MERCHANT, with_shipping: bool = True, kind: RefundKind = RefundKind.CASE) -> Refund:
    """F1 + E10: order the refund once, with a key derived from the case; the case waits for settlement."""
    values = case._goods_value(order)
    goods_total = sum(values.values())
    shipping_left = order.remaining_shipping_fen if (case.includes_shipping and with_shipping) else 0
    most = goods_total + shipping_left
    amount = most if amount is None else amount
    require_within(amount, most)
    skus = list(values)
    goods_part = min(amount, goods_total)
    shares = split_proportionally(goods_part, [values[s] for s in skus])
    n = len(case.refunds(order)) + 1
    refund = order.issue_refund(
        key=f"case:{case.id}:refund:{n}",
        kind=kind,
        payer=payer,
        rule=rule,
        now=now,
        actor=actor,
        goods=dict(zip(skus, shares, strict=True)),
        shipping_fen=amount - goods_part,
        return_shipping_fen=_return_shipping_due(case, order),
        case_id=case.id,
    )
    case.refund_fen = amount
    _enter(case, CaseStatus.REFUND_PENDING)
    return refund


def _refund_when_due(case: Case, order: Order, now: datetime, rule: str, asked: int | None,
                     *, payer: Payer = Payer.MERCHANT) -> tuple[tuple[str, ...], dict[str, Any]]:
    """F2 + E10: the refund of an automatic action, its amount taken when it fires, not when it was asked or ruled.

    Money may have gone back to the buyer by another route meanwhile (a complaint's refund remedy, K2). The action
    refunds what was asked (``None``: everything concerned), or what is left under E10 when that is less — the
    event says how much was asked, how much was left and how much was refunded; with nothing left (and no return
    shipping to reimburse, M3) nothing is paid and the case closes as ``refunded``: the buyer already has the money.
    Only automatic actions adapt: a person asking too much is refused (:func:`require_within`, T1)."""
    left = case.max_refund_fen(order)
    wanted = left if asked is None else asked
    amount = min(wanted, left)
    if amount == wanted and amount > 0:
        _issue_refund(case, order, Actor.SYSTEM, now, rule, amount, payer=payer)
        return (rule, "F1"), {}
    data: dict[str, Any] = {"requested_fen": wanted, "left_fen": left, "refunded_fen": max(amount, 0)}
    if amount > 0 or _return_shipping_due(case, order) > 0:
        _issue_refund(case, order, Actor.SYSTEM, now, rule, max(amount, 0), payer=payer)
        return (rule, "F1", "E10"), {**data, "reason": "less_left", "explanation": (
            f"E10: only {left} of the {wanted} fen was left to refund for these items when the automatic action "
            "fired (the rest was already refunded by another route); what was left is refunded.")}
    _close(case, CloseReason.REFUNDED, now)
    return (rule, "E10"), {**data, "reason": "nothing_left", "explanation": (
        "E10: nothing was left to refund for these items when the automatic action fired (already refunded by "
        "another route); the case closes without a further refund.")}


# --- the entry points ----------------------------------------------------------------------------------
@functools.cache
def signature(handler: Any) -> inspect.Signature:
    """A handler's signature, computed once (``inspect.signature`` took ~7 % of a replayed case's CPU)."""
    return inspect.signature(handler)


def taken_as(action: Action, case: Case, order: Order, policy: Policy) -> Action:
    """M2: after a refusal the buyer may "accept" — API.md's buyer action for accepting is ``accept_offer``; with no
    offer on the case but a refusal (``case_guards.after_refusal``), accepting it is ``accept_rejection``."""
    if action is Action.ACCEPT_OFFER and case.status is CaseStatus.AWAITING_BUYER and case.offer is None:
        try:
            _guards.after_refusal(case, order, Actor.BUYER, policy)
        except StateConflict:
            return action
        return Action.ACCEPT_REJECTION
    return action


def act(order: Order, case_id: str, action: Action, actor: Actor, now: datetime, policy: Policy,
        expected_version: int | None = None, **params: Any) -> Case:
    """Take ``action`` on a case as ``actor`` at ``now``; refuses with a typed error and changes nothing."""
    case = order.case(case_id)
    if expected_version is not None and expected_version != case.version:
        raise StateConflict("T2", N_("The case changed meanwhile (version {version}); reload it and try again."),
                            version=case.version)
    action = taken_as(action, case, order, policy)
    table = TRANSITIONS[case.status]
    if action not in table:
        raise StateConflict(
            "C1" if action is Action.CANCEL else _status_rule(case),  # C1 decides when a case can be cancelled
            N_("{action} is not possible while the case is {status}."),
            action=str(action), status=str(case.status),
        )
    actors, targets = table[action]
    if actor not in actors:
        raise NotPermitted("T2", N_("{action} is not an action for the {actor}."), action=str(action), actor=str(actor))
    _guards.check(action, case, order, actor, policy)  # the action's preconditions (case_guards.GUARDS)
    before = case.status
    handler = _HANDLERS[action]
    try:
        signature(handler).bind(case, order, actor, now, policy, **params)
    except TypeError as exc:  # an unknown or missing parameter for this action
        raise InvalidInput("S4", N_("Wrong parameters for {action}: {problem}."), action=str(action), problem=str(exc)) from exc
    mark = len(order.pending_events)
    rules, data = handler(case, order, actor, now, policy, **params)
    assert case.status in targets, f"{action} led {before} to {case.status}, outside the table"
    if case.first_response_at is None and actor is Actor.MERCHANT:
        case.first_response_at = now  # S1: first response time
    case.version += 1
    order.version += 1
    _event(order, case, str(action), actor, now, rules, before, **{**_public(params), **data})
    _cause_first(order, mark)
    return case


def fire(order: Order, case_id: str, action: Auto, stage: int, now: datetime, policy: Policy,
         due_at: datetime | None = None) -> bool:
    """Apply an automatic action that fell due. Returns False (and changes nothing) for a stale timer.

    A timer is identified by (case, stage, action[, due_at]); each applies at most once.
    """
    case = order.case(case_id)
    timer = next(
        (t for t in case.timers() if t.action is action and t.stage == stage and (due_at is None or t.due_at == due_at)),
        None,
    )
    if timer is None or timer.due_at > now:
        return False
    key = (stage, f"{action}@{timer.due_at.isoformat()}")
    if key in case.fired:
        return False
    case.fired.add(key)
    before = case.status
    mark = len(order.pending_events)
    rules, data = _AUTO_HANDLERS[action](case, order, timer, policy)
    assert case.status in AUTO_TRANSITIONS[before][action], f"{action} led {before} to {case.status}"
    case.version += 1
    order.version += 1
    _event(order, case, str(action), Actor.SYSTEM, timer.due_at, rules, before, due_at=timer.due_at.isoformat(), **data)
    _cause_first(order, mark)
    return True


def approve_at_opening(order: Order, case_id: str, now: datetime, policy: Policy) -> Case:
    """E7: a case the merchant opened on the buyer's behalf, with the buyer's consent, starts where the merchant's own
    approval puts it (M1) — a refund_only is refunded, a return approved to the shop's return address (M3, M5), a
    reship waits for the shipment (M7) — instead of waiting for the merchant's answer to itself. It is the merchant's
    ``approve``, through the transition table, and its event cites E7 besides the approval's rules."""
    mark = len(order.pending_events)
    case = act(order, case_id, Action.APPROVE, Actor.MERCHANT, now, policy)
    approval = order.pending_events[mark]  # the action's own event comes first (_cause_first)
    assert approval.kind == str(Action.APPROVE) and approval.case_id == case_id
    order.pending_events[mark] = replace(approval, rules=("E7", *approval.rules),
                                         data={**approval.data, "at_opening": True})
    return case


def pay_complaint_refund(order: Order, case_id: str, amount_fen: int, now: datetime, *, complaint_id: str) -> Refund:
    """K2: the refund remedy of an upheld complaint, paid through the case open on the order rather than beside it.

    The platform pays it (P2, recovered from the deposit) within what E10 leaves on the case — its goods, and the
    shipping fee only where the case includes it; more is refused, never reduced. The case moves to refund_pending
    (a new stage: every pending automatic action of the old one is stale) and closes as refunded on settlement (F1).
    """
    case = order.case(case_id)
    if case.status is CaseStatus.REFUND_PENDING or case.is_closed:
        raise StateConflict("K2", N_("Case {case_id} is {status}: a refund remedy cannot be paid through it now."),
                            case_id=case.id, status=str(case.status))
    amount = require_fen(amount_fen, "amount_fen")
    require_within(amount, case.max_refund_fen(order))
    before = case.status
    mark = len(order.pending_events)
    case.offer = None
    refund = _issue_refund(case, order, Actor.PLATFORM, now, "K2", amount, payer=Payer.PLATFORM, kind=RefundKind.COMPLAINT)
    case.version += 1
    order.version += 1
    _event(order, case, "complaint_refund", Actor.PLATFORM, now, ("K2", "E10", "F1"), before,
           complaint_id=complaint_id, refund_fen=amount)
    _cause_first(order, mark)
    return refund


def record_assignment(order: Order, case_id: str, actor: Actor, now: datetime, *, assignee_id: str | None,
                      previous_id: str | None, by_user_id: str | None) -> None:
    """S1: who of the shop's staff handles the case, recorded in the case's timeline as ``assigned`` (``None``: the
    case goes back to the shop's unassigned cases). Staffing is no state of the case: its status, deadline and
    version stay as they are."""
    case = order.case(case_id)
    _event(order, case, "assigned", actor, now, ("S1",), case.status, assignee_id=assignee_id,
           previous_assignee_id=previous_id, by_user_id=by_user_id)


def _cause_first(order: Order, mark: int) -> None:
    """Put the action's own event (recorded last) before the events it caused (a refund issued, …)."""
    order.pending_events.insert(mark, order.pending_events.pop())


def _public(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in params.items() if v is not None}


def _status_rule(case: Case) -> str:
    return {
        S.AWAITING_MERCHANT: "M1", S.AWAITING_BUYER: "M2", S.AWAITING_RETURN_SHIPMENT: "M5",
        S.RETURN_IN_TRANSIT: "M6", S.AWAITING_MERCHANT_RECEIPT: "M6", S.AWAITING_REPLACEMENT_SHIPMENT: "M7",
        S.REPLACEMENT_IN_TRANSIT: "M7", S.PLATFORM_REVIEW: "P1", S.REFUND_PENDING: "F1", S.CLOSED: "C1",
    }[case.status]


from . import case_guards as _guards  # noqa: E402  (guards and handlers need the helpers above)
from . import case_handlers as _h  # noqa: E402

_HANDLERS = _h.HANDLERS
_AUTO_HANDLERS = _h.AUTO_HANDLERS
