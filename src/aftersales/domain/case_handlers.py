"""What each case action and each automatic action does (the table itself is in ``cases``).

A person's action is checked by its guards (``case_guards``) before its handler runs: a handler here validates only
the request's parameters and makes the effect."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .cases import (
    REFUND_TYPES,
    RETURN_TYPES,
    Auto,
    Case,
    CaseStatus,
    CloseReason,
    Deadline,
    Offer,
    Ruling,
    ShippingPayer,
    _after_approval,
    _approve_return,
    _await_replacement_shipment,
    _close,
    _enter,
    _issue_refund,
    _refund_when_due,
    _return_shipping_due,
    _text,
    _wait_for_merchant,
    require_within,
)
from .catalog import (
    AFTER_SALES_REASONS,
    ALL_REASONS,
    EXCHANGE_REASONS,
    REPAIR_REASONS,
    RESHIP_REASONS,
    CaseType,
    Reason,
)
from .errors import InvalidInput, RuleViolation, StateConflict
from .events import Actor
from .messages import N_
from .money import require_fen
from .orders import Order, Payer, RefundKind
from .policy import Policy
from .timeutil import after_hours, require_aware, window_end

Outcome = tuple[tuple[str, ...], dict[str, Any]]
S = CaseStatus


def _payer(value: object) -> ShippingPayer | None:
    if value is None:
        return None
    try:
        return ShippingPayer(str(value))
    except ValueError:
        raise InvalidInput("M3", N_("{field} must be one of: {values}."), field="return_shipping_payer",
                           values="buyer, merchant, insurer") from None


def _when(at: datetime | None, now: datetime, after: datetime | None, field: str) -> datetime:
    at = now if at is None else require_aware(at, field)
    if at > now:
        raise InvalidInput("T0", N_("{field} cannot be in the future."), field=field)
    if after is not None and at < after:
        raise InvalidInput("T0", N_("{field} cannot come before the shipment."), field=field)
    return at


# --- the merchant answers (M1–M4, M8) -------------------------------------------------------------------
def approve(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy,
            return_shipping_payer: object = None) -> Outcome:
    payer = _payer(return_shipping_payer)
    if payer is not None and case.type not in RETURN_TYPES:
        raise InvalidInput("M3", N_("{field} applies only to returns."), field="return_shipping_payer")
    _after_approval(case, order, actor, now, policy, payer, "M1")
    if case.type in RETURN_TYPES:
        return ("M1", "M3", "M5"), {"proposed_payer": str(case.return_shipping_proposed),
                                    "shipping_disputed": case.return_shipping_disputed}
    return ("M1", "F1") if case.type is CaseType.REFUND_ONLY else ("M1", "M7"), {}


def reject(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy, reason: str | None = None) -> Outcome:
    text = _text(reason, "reason", required=True, rule="M2")
    case.rejection_reason = text
    _enter(case, S.AWAITING_BUYER, Auto.CLOSE_UNANSWERED, window_end(now, policy.buyer_response_days, policy.timezone))
    return ("M2",), {}


def _offer(case: Case, kind: str, amount: int | None, now: datetime, policy: Policy) -> None:
    case.offer = Offer(kind, amount, now, case.due_at)
    _enter(case, S.AWAITING_BUYER, Auto.LAPSE_OFFER, window_end(now, policy.buyer_response_days, policy.timezone))


def offer_exchange(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy) -> Outcome:
    _offer(case, "exchange", None, now, policy)
    return ("M4",), {}


def offer_partial_refund(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy,
                         refund_fen: object = None) -> Outcome:
    amount = require_fen(refund_fen, "refund_fen")
    most = case.max_refund_fen(order)
    require_within(amount, most)
    _offer(case, "partial_refund", amount, now, policy)
    return ("M8", "E10"), {}


# --- the buyer answers -------------------------------------------------------------------------------------
def _require_offer(case: Case) -> Offer:
    if case.offer is None:
        raise StateConflict("M8", N_("There is no offer to answer on this case."))
    return case.offer


def accept_offer(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy) -> Outcome:
    offer = case.offer
    assert offer is not None  # guard M8 (case_guards.offer_open)
    case.offer = None
    if offer.kind == "partial_refund":
        _issue_refund(case, order, actor, now, "M8", offer.refund_fen)
        return ("M8", "F1"), {"refund_fen": offer.refund_fen}
    case.type = CaseType.EXCHANGE
    case.refund_fen = None
    _approve_return(case, order, now, policy, ShippingPayer.MERCHANT)
    return ("M4", "M3"), {}


def _decline(case: Case, order: Order, now: datetime, policy: Policy) -> Outcome:
    offer = _require_offer(case)
    case.offer = None
    if offer.kind == "exchange" and case.type is CaseType.RETURN_REFUND:
        # M4: declining the exchange lets the return and refund go on, the merchant paying return shipping.
        _approve_return(case, order, now, policy, ShippingPayer.MERCHANT)
        return ("M4", "M3"), {}
    # The merchant's clock did not stop while the offer was open; if it ran out meanwhile, M1 is due now
    # (never back-dated before the answer or the lapse that ended the offer).
    resume = offer.resume_due_at if offer.resume_due_at is None else max(offer.resume_due_at, now)
    _wait_for_merchant(case, now, policy, resume)
    return ("M4" if offer.kind == "exchange" else "M8", "M1"), {}


def decline_offer(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy) -> Outcome:
    return _decline(case, order, now, policy)


_TYPE_REASONS: dict[CaseType, tuple[Reason, ...]] = {
    CaseType.REFUND_ONLY: AFTER_SALES_REASONS,
    CaseType.RETURN_REFUND: AFTER_SALES_REASONS,
    CaseType.EXCHANGE: EXCHANGE_REASONS,
    CaseType.RESHIP: RESHIP_REASONS,
    CaseType.REPAIR: REPAIR_REASONS,
}


def resubmit(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy, reason: object = None,
             refund_fen: object = None, description: str | None = None) -> Outcome:
    changed: dict[str, Any] = {}
    if reason is not None:
        try:
            new_reason = Reason(str(reason))
        except ValueError:
            raise InvalidInput("M2", N_("{field} must be one of: {values}."), field="reason", values=", ".join(ALL_REASONS)) from None
        allowed = _TYPE_REASONS[case.type] + ((case.reason,) if case.reason not in _TYPE_REASONS[case.type] else ())
        if new_reason not in allowed:
            raise RuleViolation("M2", N_("The reason {reason} is not accepted for {type} now; accepted reasons: {reasons}."),
                                reason=str(new_reason), type=str(case.type), reasons=", ".join(allowed))
        changed["reason"] = str(new_reason)
    amount: int | None = None
    if refund_fen is not None:
        if case.type not in REFUND_TYPES:
            raise InvalidInput("E10", N_("{field} applies only to refund requests."), field="refund_fen")
        amount = require_fen(refund_fen, "refund_fen")
        most = case.max_refund_fen(order)
        require_within(amount, most)
    text = _text(description, "description") if description is not None else None
    # Validated in full: only now change the case (a refused resubmission changes nothing).
    if reason is not None:
        case.reason = new_reason
    if amount is not None:
        case.refund_fen = amount
    if text is not None:
        case.description = text
    case.rejection_reason = None
    _wait_for_merchant(case, now, policy)
    return ("M2", "M1"), changed


def accept_rejection(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy) -> Outcome:
    _close(case, CloseReason.REJECTED, now)
    return ("M2",), {}


def cancel(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy) -> Outcome:
    """C1 + E8: the buyer withdraws the case while nothing has moved (guards); each cancellation counts."""
    order.buyer_cancellations += 1
    case.offer = None
    _close(case, CloseReason.CANCELLED, now)
    left = policy.max_buyer_cancellations - order.buyer_cancellations
    return ("C1", "E8"), {"cancellations_left": left}


# --- returns (M3, M5, M6) --------------------------------------------------------------------------------
def _shipment(carrier: str | None, tracking_no: str | None, rule: str) -> tuple[str, str]:
    c = _text(carrier, "carrier", required=True, rule=rule)
    t = _text(tracking_no, "tracking_no", required=True, rule=rule)
    if len(c) > 100 or len(t) > 100:
        raise InvalidInput(rule, N_("{field} is longer than {max} characters."), field="carrier/tracking_no", max=100)
    return c, t


def ship_return(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy, carrier: str | None = None,
                tracking_no: str | None = None, shipping_fee_fen: object = None) -> Outcome:
    """M5: the buyer sends the goods back. M3: the cost stated is recorded as stated; when the shop pays return
    shipping it is reimbursed with the refund up to ``return_shipping_cap_fen`` — a stated cap: a higher cost is
    accepted, and the answer and the event say what will be reimbursed."""
    shipment = _shipment(carrier, tracking_no, "M5")
    fee = 0 if shipping_fee_fen is None else require_fen(shipping_fee_fen, "shipping_fee_fen", positive=False)
    merchant_pays = case.return_shipping_payer is ShippingPayer.MERCHANT
    reimbursable = min(fee, policy.return_shipping_cap_fen) if merchant_pays else 0
    case.return_carrier, case.return_tracking_no = shipment
    case.return_shipping_fee_fen = fee
    case.return_shipping_reimbursable_fen = reimbursable
    case.return_shipped_at = now
    _enter(case, S.RETURN_IN_TRANSIT, Auto.RETURN_TIMEOUT, window_end(now, policy.return_auto_refund_days, policy.timezone))
    if not merchant_pays:
        return ("M5", "M6"), {}
    return ("M5", "M6", "M3"), {"shipping_fee_fen": fee, "reimbursable_fen": reimbursable,
                                "cap_fen": policy.return_shipping_cap_fen, "capped": fee > reimbursable}


def _received(case: Case, at: datetime, policy: Policy) -> tuple[str, ...]:
    if case.type is CaseType.RETURN_REFUND:
        _enter(case, S.AWAITING_MERCHANT_RECEIPT, Auto.RETURN_TIMEOUT, after_hours(at, policy.merchant_confirm_hours))
        return ("M6",)
    _await_replacement_shipment(case, at, policy)
    return ("M6", "M7")


def mark_return_delivered(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy,
                          at: datetime | None = None) -> Outcome:
    case.return_delivered_at = _when(at, now, case.return_shipped_at, "at")
    return _received(case, case.return_delivered_at, policy), {}


def confirm_return(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy) -> Outcome:
    if case.return_delivered_at is None:
        case.return_delivered_at = now
    if case.type is CaseType.RETURN_REFUND:
        _issue_refund(case, order, actor, now, "M6", case.refund_fen)
        return ("M6", "F1"), {}
    _await_replacement_shipment(case, now, policy)
    return ("M6", "M7"), {}


def reject_return(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy, reason: str | None = None) -> Outcome:
    text = _text(reason, "reason", required=True, rule="M6")
    case.rejection_reason = text
    case.escalation_reason = text
    _to_platform(case, now, policy)
    return ("M6", "P1"), {}


# --- replacements (M7) -----------------------------------------------------------------------------------
def ship_replacement(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy, carrier: str | None = None,
                     tracking_no: str | None = None) -> Outcome:
    case.replacement_carrier, case.replacement_tracking_no = _shipment(carrier, tracking_no, "M7")
    case.replacement_shipped_at = now
    due = _return_shipping_due(case, order)
    if due > 0:  # M3: merchant-paid return shipping goes back to the buyer now that the exchange goes ahead
        order.issue_refund(key=f"case:{case.id}:return-shipping", kind=RefundKind.RETURN_SHIPPING, payer=Payer.MERCHANT,
                           rule="M3", now=now, actor=actor, goods={}, return_shipping_fen=due, case_id=case.id)
    # Without a delivery record the replacement is presumed delivered after the transit time M6 allows a return.
    _enter(case, S.REPLACEMENT_IN_TRANSIT, Auto.AUTO_CONFIRM_RECEIVED,
           window_end(now, policy.return_auto_refund_days + policy.buyer_confirm_days, policy.timezone))
    return ("M7",), {}


def mark_replacement_delivered(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy,
                               at: datetime | None = None) -> Outcome:
    case.replacement_delivered_at = _when(at, now, case.replacement_shipped_at, "at")
    _enter(case, S.REPLACEMENT_IN_TRANSIT, Auto.AUTO_CONFIRM_RECEIVED,
           window_end(case.replacement_delivered_at, policy.buyer_confirm_days, policy.timezone))
    return ("M7",), {}


_DONE = {CaseType.EXCHANGE: CloseReason.EXCHANGED, CaseType.RESHIP: CloseReason.RESHIPPED, CaseType.REPAIR: CloseReason.REPAIRED}


def confirm_received(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy) -> Outcome:
    _close(case, _DONE[case.type], now)
    return ("M7",), {}


# --- the platform (P1, P2) ---------------------------------------------------------------------------------
def _to_platform(case: Case, now: datetime, policy: Policy) -> None:
    _enter(case, S.PLATFORM_REVIEW, Auto.FLAG_PLATFORM_OVERDUE, after_hours(now, policy.platform_accept_hours))


def escalate(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy, reason: str | None = None) -> Outcome:
    text = _text(reason, "reason", required=True, rule="P1")
    why = "M2" if case.status is S.AWAITING_BUYER else "M3"  # which guard let it through (case_guards.may_escalate)
    case.escalation_reason = text
    _to_platform(case, now, policy)
    return ("P1", why), {}


def rule(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy, outcome: str | None = None,
         refund_fen: object = None, rationale: str | None = None) -> Outcome:
    why = _text(rationale, "rationale", required=True, rule="P1")
    if outcome == "reject":
        if refund_fen is not None:
            raise InvalidInput("P1", N_("{field} applies only to refund requests."), field="refund_fen")
        case.ruling = Ruling("reject", None, why, now)
        _close(case, CloseReason.PLATFORM_REJECTED, now)
        return ("P1",), {}
    if outcome != "refund":
        raise InvalidInput("P1", N_("{field} must be one of: {values}."), field="outcome", values="refund, reject")
    most = case.max_refund_fen(order)
    amount = most if refund_fen is None else require_fen(refund_fen, "refund_fen")
    require_within(amount, most)
    if amount <= 0:
        raise RuleViolation("E10", N_("Everything paid for this order has already been refunded."))
    case.ruling = Ruling("refund", amount, why, now)
    _enter(case, S.PLATFORM_REVIEW, Auto.ADVANCE_COMPENSATION, after_hours(now, policy.merchant_pay_hours))
    return ("P1", "E10"), {"refund_fen": amount}


def pay_ruling(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy) -> Outcome:
    assert case.ruling is not None  # guard P1 (case_guards.ruling_unpaid)
    case.ruling.paid_by = Payer.MERCHANT
    _issue_refund(case, order, actor, now, "P1", case.ruling.refund_fen)
    return ("P1", "F1"), {}


#: P2: why the platform pays a refund ruling at once instead of waiting for the merchant's deadline.
ADVANCE_REASONS = ("shop_closed", "merchant_unreachable")


def advance_compensate(case: Case, order: Order, actor: Actor, now: datetime, policy: Policy,
                       reason: str | None = None) -> Outcome:
    """P2: the shop is closed or unreachable, so the platform pays the ruling now and recovers it from the deposit."""
    assert case.ruling is not None  # guard P2 (case_guards.ruling_unpaid_for_advance)
    if reason not in ADVANCE_REASONS:
        raise InvalidInput("P2", N_("{field} must be one of: {values}."), field="reason", values=", ".join(ADVANCE_REASONS))
    case.ruling.paid_by = Payer.PLATFORM
    _issue_refund(case, order, actor, now, "P2", case.ruling.refund_fen, payer=Payer.PLATFORM)
    return ("P2", "P1", "F1"), {"reason": reason}


HANDLERS: dict[Any, Callable[..., Outcome]] = {
    "approve": approve, "reject": reject, "offer_exchange": offer_exchange, "offer_partial_refund": offer_partial_refund,
    "accept_offer": accept_offer, "decline_offer": decline_offer, "ship_return": ship_return,
    "mark_return_delivered": mark_return_delivered, "confirm_return": confirm_return, "reject_return": reject_return,
    "ship_replacement": ship_replacement, "mark_replacement_delivered": mark_replacement_delivered,
    "confirm_received": confirm_received, "resubmit": resubmit, "accept_rejection": accept_rejection, "cancel": cancel,
    "escalate": escalate, "rule": rule, "pay_ruling": pay_ruling,
    "advance_compensate": advance_compensate,
}


# --- automatic actions (actor system, at the due instant) ------------------------------------------------
def _auto_remind(case: Case, order: Order, timer: Deadline, policy: Policy) -> Outcome:
    return ("M1",), {"deadline": case.due_at.isoformat() if case.due_at else None}


def _auto_approve(case: Case, order: Order, timer: Deadline, policy: Policy) -> Outcome:
    if case.type is CaseType.REFUND_ONLY:  # F2 + E10: the amount is what is left when the deadline passes
        rules, data = _refund_when_due(case, order, timer.due_at, "M1", case.refund_fen)
        return ("M1", *(r for r in rules if r != "M1")), data
    _after_approval(case, order, Actor.SYSTEM, timer.due_at, policy, None, "M1")
    return ("M1",), {}


def _auto_close_unanswered(case: Case, order: Order, timer: Deadline, policy: Policy) -> Outcome:
    _close(case, CloseReason.REJECTED, timer.due_at)
    return ("M2",), {}


def _auto_lapse_offer(case: Case, order: Order, timer: Deadline, policy: Policy) -> Outcome:
    return _decline(case, order, timer.due_at, policy)


def _auto_buyer_overdue(case: Case, order: Order, timer: Deadline, policy: Policy) -> Outcome:
    _close(case, CloseReason.BUYER_OVERDUE, timer.due_at)
    return ("M5",), {}


def _auto_return_timeout(case: Case, order: Order, timer: Deadline, policy: Policy) -> Outcome:
    if case.type is CaseType.RETURN_REFUND:
        return _refund_when_due(case, order, timer.due_at, "M6", case.refund_fen)
    # Exchange / repair with no delivery record: the return is presumed received; the merchant's M7 clock starts.
    _await_replacement_shipment(case, timer.due_at, policy)
    return ("M6", "M7"), {}


def _auto_ship_timeout(case: Case, order: Order, timer: Deadline, policy: Policy) -> Outcome:
    return _refund_when_due(case, order, timer.due_at, "M7", None)


def _auto_confirm(case: Case, order: Order, timer: Deadline, policy: Policy) -> Outcome:
    _close(case, _DONE[case.type], timer.due_at)
    return ("M7",), {}


def _auto_flag_platform(case: Case, order: Order, timer: Deadline, policy: Policy) -> Outcome:
    case.platform_overdue = True
    case.due_action = case.due_at = None
    return ("P1",), {}


def _auto_advance_compensation(case: Case, order: Order, timer: Deadline, policy: Policy) -> Outcome:
    assert case.ruling is not None
    rules, data = _refund_when_due(case, order, timer.due_at, "P2", case.ruling.refund_fen, payer=Payer.PLATFORM)
    if case.status is not CaseStatus.CLOSED:  # the platform paid (part of) the ruling; nothing left: nobody paid
        case.ruling.paid_by = Payer.PLATFORM
    return ("P2", "P1", *rules[1:]), data


AUTO_HANDLERS: dict[Auto, Callable[[Case, Order, Deadline, Policy], Outcome]] = {
    Auto.REMIND_MERCHANT: _auto_remind,
    Auto.AUTO_APPROVE: _auto_approve,
    Auto.CLOSE_UNANSWERED: _auto_close_unanswered,
    Auto.LAPSE_OFFER: _auto_lapse_offer,
    Auto.CLOSE_BUYER_OVERDUE: _auto_buyer_overdue,
    Auto.RETURN_TIMEOUT: _auto_return_timeout,
    Auto.SHIP_TIMEOUT: _auto_ship_timeout,
    Auto.AUTO_CONFIRM_RECEIVED: _auto_confirm,
    Auto.FLAG_PLATFORM_OVERDUE: _auto_flag_platform,
    Auto.ADVANCE_COMPENSATION: _auto_advance_compensation,
}
