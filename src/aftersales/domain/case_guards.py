"""The preconditions of each person's action on a case, written once (M2, M4, M6–M8, C1, E8, E10, P1, P2).

A guard ``guard(case, order, actor, policy) -> None`` checks what the case, its order and the policy say *now* —
never the request's parameters — and raises the typed error of its rule when the action cannot succeed. The same
guards serve twice: :func:`aftersales.domain.cases.act` runs them after the transition table and before the handler,
and :meth:`aftersales.domain.cases.Case.allowed_actions` lists exactly the actions whose table entry admits the actor
and whose guards pass. The handlers (``case_handlers``) keep only the validation of parameters and the effect.
"""

from __future__ import annotations

from collections.abc import Callable

from .cases import REFUND_TYPES, RETURN_TYPES, TRANSITIONS, Action, Case, CaseStatus
from .catalog import EXCHANGE_FIRST_REASONS, CaseType, Reason
from .errors import RuleViolation, StateConflict
from .events import Actor
from .messages import N_
from .orders import Order, OrderStatus
from .policy import Policy

Guard = Callable[[Case, Order, Actor, Policy], None]


# --- the merchant's answer (M2, M4, M8, E10) ---------------------------------------------------------------
def refusable_refund(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """M2: a refund asked before shipment (E2) cannot be refused — shipping the order afterwards changes nothing."""
    if case.type is CaseType.REFUND_ONLY and (order.shipped_at is None or case.opened_at < order.shipped_at):
        raise RuleViolation("M2", N_("A refund of an order that has not shipped cannot be refused."))


def refusable_return(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """M2: a valid no-reason return the buyer asked for cannot be refused; the goods are inspected on arrival (M6)."""
    if case.type is CaseType.RETURN_REFUND and case.reason is Reason.NO_REASON and case.opened_by is Actor.BUYER:
        raise RuleViolation(
            "M2", N_("A valid no-reason return cannot be refused; the goods can be inspected when they arrive (M6)."))


def exchange_may_be_offered(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """M4: an exchange is offered first only on refunds for quality problems or wrong items, once delivered."""
    if case.reason not in EXCHANGE_FIRST_REASONS or case.type not in REFUND_TYPES:
        raise RuleViolation(
            "M4", N_("An exchange can be offered first only on refunds for quality problems or wrong items."))
    if order.status is not OrderStatus.DELIVERED:
        raise RuleViolation("M4", N_("An exchange can be offered only once the goods were delivered."))


def something_left_to_refund(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """E10: an amount can be offered only while something of these items (or the shipping) is left to refund."""
    if case.max_refund_fen(order) <= 0:
        raise RuleViolation("E10", N_("Everything paid for this order has already been refunded."))


# --- the buyer's answer (M2, M8) ----------------------------------------------------------------------------
def offer_open(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """M8 (and M4): only an offer the shop made can be accepted or declined."""
    if case.offer is None:
        raise StateConflict("M8", N_("There is no offer to answer on this case."))


def after_refusal(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """M2: resubmitting or accepting the refusal answers a refusal — not an offer."""
    if case.offer is not None or case.rejection_reason is None:
        raise StateConflict("M2", N_("This is possible only after the shop refused the request."))


def may_escalate(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """P1: the platform steps in after a refusal (M2), or a disagreement on who pays return shipping (M3).

    A rejected return (M6) goes to the platform by itself, through ``reject_return``."""
    if case.status is CaseStatus.AWAITING_BUYER:
        after_refusal(case, order, actor, policy)
    elif not case.return_shipping_disputed:
        raise RuleViolation("P1", N_("The platform can be asked to step in after a refusal, a rejected return or a "
                                     "disagreement on return shipping."))


# --- cancelling (C1, E8) -------------------------------------------------------------------------------------
def nothing_moved(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """C1: a case can be cancelled until money or goods moved on it (or the platform ruled)."""
    if case.refunds(order) or case.return_shipped_at or case.replacement_shipped_at or case.ruling is not None:
        raise StateConflict("C1", N_("The case can no longer be cancelled: money or goods have already moved on it."))


def cancellations_left(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """E8: each cancellation counts, up to ``max_buyer_cancellations`` per order."""
    if order.buyer_cancellations >= policy.max_buyer_cancellations:
        raise RuleViolation("E8", N_("After-sales requests on this order were cancelled {count} times, the most allowed."),
                            count=order.buyer_cancellations)


# --- returns and replacements (M6, M7) -------------------------------------------------------------------------
def goods_returned(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """M6: only goods the buyer sent back can be rejected."""
    if case.type not in RETURN_TYPES or case.return_shipped_at is None:
        raise StateConflict("M6", N_("Only returned goods can be rejected."))


def replacement_not_delivered(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """M7: the replacement's delivery is recorded once."""
    if case.replacement_delivered_at is not None:
        raise StateConflict("M7", N_("The replacement's delivery is already recorded."))


# --- the platform (P1, P2) -------------------------------------------------------------------------------------
def not_ruled(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """P1: one ruling per case."""
    if case.ruling is not None:
        raise StateConflict("P1", N_("The platform has already ruled on this case."))


def _refund_ruling_unpaid(rule: str) -> Guard:
    def guard(case: Case, order: Order, actor: Actor, policy: Policy) -> None:
        if case.ruling is None or case.ruling.outcome != "refund" or case.ruling.paid_by is not None:
            raise StateConflict(rule, N_("There is no refund ruling to pay on this case."))

    guard.__name__ = guard.__qualname__ = f"refund_ruling_unpaid_{rule}"
    guard.__doc__ = f"{rule}: only a refund ruling not yet paid is paid (by the shop, P1, or in advance by the platform, P2)."
    return guard


ruling_unpaid = _refund_ruling_unpaid("P1")
ruling_unpaid_for_advance = _refund_ruling_unpaid("P2")


#: Each action's guards, in the order they are checked (an action not named has none beyond the table).
GUARDS: dict[Action, tuple[Guard, ...]] = {
    Action.REJECT: (refusable_refund, refusable_return),
    Action.OFFER_EXCHANGE: (exchange_may_be_offered,),
    Action.OFFER_PARTIAL_REFUND: (something_left_to_refund,),
    Action.ACCEPT_OFFER: (offer_open,),
    Action.DECLINE_OFFER: (offer_open,),
    Action.RESUBMIT: (after_refusal,),
    Action.ACCEPT_REJECTION: (after_refusal,),
    Action.ESCALATE: (may_escalate,),
    Action.CANCEL: (nothing_moved, cancellations_left),
    Action.REJECT_RETURN: (goods_returned,),
    Action.MARK_REPLACEMENT_DELIVERED: (replacement_not_delivered,),
    Action.RULE: (not_ruled,),
    Action.PAY_RULING: (ruling_unpaid,),
    Action.ADVANCE_COMPENSATE: (ruling_unpaid_for_advance,),
}


def check(action: Action, case: Case, order: Order, actor: Actor, policy: Policy) -> None:
    """Run the guards of ``action``: the first that fails raises its typed error with its rule id."""
    for guard in GUARDS.get(action, ()):
        guard(case, order, actor, policy)


# --- whose move is it (S1 "needs my action") -----------------------------------------------------------------
def statuses_with_actions(actor: Actor) -> frozenset[CaseStatus]:
    """The statuses in which the transition table gives ``actor`` an action at all: where a case can be waiting
    for ``actor`` (the queue narrows on them before :func:`waits_for` decides case by case)."""
    return frozenset(status for status, table in TRANSITIONS.items()
                     if any(actor in actors for actors, _ in table.values()))


def waits_for(actor: Actor, case: Case, order: Order, policy: Policy) -> bool:
    """S1: the case's next move is ``actor``'s — some action of the table admits ``actor`` now and its guards pass
    (exactly ``Case.allowed_actions``, the checks :func:`aftersales.domain.cases.act` runs). Whom a running deadline
    awaits (``cases.AWAITS``) is read from the same table."""
    return bool(case.allowed_actions(actor, order, policy))


def unrefusable_approval(case: Case, order: Order, actor: Actor, policy: Policy) -> bool:
    """M2: ``actor`` may approve the request now and could not refuse it — a refund asked before shipment, a valid
    no-reason return: the cases the queue offers to approve together (each is still approved through ``act``)."""
    if Action.APPROVE not in case.allowed_actions(actor, order, policy):
        return False
    try:
        for guard in GUARDS[Action.REJECT]:
            guard(case, order, actor, policy)
    except RuleViolation:
        return True
    return False
