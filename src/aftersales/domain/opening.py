"""Opening a case: eligibility (E1–E10) decides, then the case starts its M1 wait."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from .cases import Case, approve_at_opening, start_case
from .catalog import CaseType, Category, Reason
from .eligibility import evaluate, item_terms
from .errors import InvalidInput, NotPermitted, RuleViolation
from .events import Actor
from .groups import Group
from .messages import N_, Msg
from .orders import Order, OrderStatus
from .policy import Policy


def open_case(
    order: Order,
    *,
    case_id: str,
    actor: Actor,
    case_type: CaseType | str,
    reason: Reason | str,
    now: datetime,
    policy: Policy,
    categories: Mapping[str, Category],
    group: Group | None = None,
    items: dict[str, int] | None = None,
    refund_fen: int | None = None,
    description: str | None = None,
    buyer_consent: bool = False,
) -> Case:
    """Open a case on ``order`` for ``actor`` (the buyer, or the merchant on the buyer's behalf, E7).

    A buyer's case waits for the merchant (M1); one the merchant opened with the buyer's consent starts approved."""
    if actor not in (Actor.BUYER, Actor.MERCHANT):
        raise NotPermitted("T2", N_("Only the buyer, or the shop on the buyer's behalf, opens a case."))
    try:
        case_type = CaseType(case_type)
    except ValueError:
        raise InvalidInput("E5", N_("{field} must be one of: {values}."), field="type", values=", ".join(CaseType)) from None
    try:
        reason = Reason(reason)
    except ValueError:
        raise InvalidInput("E5", N_("{field} must be one of: {values}."), field="reason", values=", ".join(Reason)) from None
    option = evaluate(order, actor=actor, now=now, policy=policy, categories=categories, group=group).option(case_type)
    if not option.allowed:
        raise RuleViolation(option.rule, option.explanation.text, **option.explanation.params)
    if actor is Actor.MERCHANT and not buyer_consent:
        raise RuleViolation("E7", N_("The shop can open a case for the buyer only with the buyer's consent."))
    no_reason_skus: frozenset[str] = frozenset()
    exclusions: dict[str, Msg] = {}
    if reason is Reason.NO_REASON and order.status is OrderStatus.DELIVERED and option.rule != "E7":
        terms = item_terms(order, categories, policy)
        no_reason_skus = frozenset(t.item.sku for t in terms if t.no_reason_ok)
        exclusions = {t.item.sku: t.no_reason_rule for t in terms if t.no_reason_rule is not None}
        if case_type is CaseType.RETURN_REFUND and reason not in option.reasons:
            # S4: why no reason is not enough — the no-reason period ended, or every line in the window is excluded
            # (the explanation names each exclusion and its item): the eligibility answer's own words.
            raise RuleViolation("E4", option.explanation.text, **option.explanation.params)
    elif option.rule == "E7" or order.status is not OrderStatus.DELIVERED:
        no_reason_skus = frozenset(option.skus)
    case = start_case(
        order,
        case_id=case_id,
        actor=actor,
        case_type=case_type,
        reason=reason,
        allowed_reasons=option.reasons,
        eligible_skus=option.skus,
        no_reason_skus=no_reason_skus,
        exclusions=exclusions,
        items=items,
        refund_fen=refund_fen,
        description=description,
        now=now,
        policy=policy,
        # The return_refund option answers E4 while the no-reason window is open, but a return for a problem the
        # merchant is responsible for is allowed by E5: the opening event cites the rule that allowed it (T2).
        rule="E5" if option.rule == "E4" and reason is not Reason.NO_REASON else option.rule,
    )
    if actor is Actor.MERCHANT:
        approve_at_opening(order, case.id, now, policy)
    return case
