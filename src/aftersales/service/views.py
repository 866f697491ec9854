"""Plain-dict views of aggregates, shared by the API and the workbench (no rule is decided here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftersales import i18n
from aftersales.domain.cases import Case
from aftersales.domain.eligibility import Eligibility
from aftersales.domain.events import Actor
from aftersales.domain.groups import Group
from aftersales.domain.orders import Order, Refund
from aftersales.domain.policy import Policy


def iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def refund_view(r: Refund) -> dict[str, Any]:
    return {"key": r.key, "kind": r.kind.value, "payer": r.payer.value, "rule": r.rule, "status": r.status.value,
            "amount_fen": r.amount_fen, "refund_fen": r.refund_fen, "return_shipping_fen": r.return_shipping_fen,
            "goods": dict(r.goods), "shipping_fen": r.shipping_fen, "case_id": r.case_id,
            "created_at": iso(r.created_at), "settled_at": iso(r.settled_at)}


def group_view(g: Group, *, actor: Actor, now: datetime) -> dict[str, Any]:
    """The group; ``allowed_actions``: what ``actor`` can do with it at ``now`` (G5)."""
    return {"id": g.id, "size": g.size, "members": len(g.member_ids), "status": g.status.value,
            "auto_complete": g.auto_complete, "opened_at": iso(g.opened_at), "expires_at": iso(g.expires_at),
            "closed_at": iso(g.closed_at), "allowed_actions": g.allowed_actions(actor, now), "version": g.version}


def order_view(o: Order, group: Group | None, *, actor: Actor, now: datetime) -> dict[str, Any]:
    """The order; ``allowed_actions``: what ``actor`` can do with the order itself now (ship, deliver)."""
    open_case = o.open_case()
    return {
        "id": o.id, "merchant_id": o.merchant_id, "buyer_id": o.buyer_id, "status": o.status.value,
        "paid_at": iso(o.paid_at), "shipping_fee_fen": o.shipping_fee_fen, "paid_fen": o.paid_fen,
        "refunded_fen": o.refunded_fen, "buyer_cancellations": o.buyer_cancellations,
        "return_shipping_insured": o.return_shipping_insured,
        "items": [{"sku": i.sku, "title": i.title, "category": i.category, "quantity": i.quantity,
                   "unit_price_fen": i.unit_price_fen, "exclusion_confirmed": i.exclusion_confirmed} for i in o.items],
        "group": group_view(group, actor=actor, now=now) if group is not None else None,
        "shipped_at": iso(o.shipped_at), "delivered_at": iso(o.delivered_at), "carrier": o.carrier,
        "tracking_no": o.tracking_no, "cancelled_at": iso(o.cancelled_at),
        "open_case_id": open_case.id if open_case else None,
        "case_ids": [c.id for c in o.cases],
        "refunds": [refund_view(r) for r in o.refunds],
        "allowed_actions": [a.value for a in o.allowed_actions(actor)],
        "version": o.version,
    }


def case_view(c: Case, order: Order, refunded_fen: int, *, actor: Actor, policy: Policy, lang: str, tz: str,
              refunds: bool = True) -> dict[str, Any]:
    """The case as ``actor`` sees it; ``allowed_actions`` are exactly those its guards let ``actor`` take now."""
    d = c.deadline
    return {
        "id": c.id, "order_id": c.order_id, "merchant_id": c.merchant_id, "buyer_id": c.buyer_id,
        "type": c.type.value, "reason": c.reason.value, "status": c.status.value,
        "close_reason": c.close_reason.value if c.close_reason else None,
        "refund_fen": c.refund_fen, "refunded_fen": refunded_fen,
        "return_shipping_payer": c.return_shipping_payer.value if c.return_shipping_payer else None,
        "return_shipping_proposed": c.return_shipping_proposed.value if c.return_shipping_proposed else None,
        "return_shipping_disputed": c.return_shipping_disputed,
        "return_shipping_fee_fen": c.return_shipping_fee_fen,
        "return_shipping_reimbursable_fen": c.return_shipping_reimbursable,
        "return_shipping_cap_fen": policy.return_shipping_cap_fen,
        "deadline": {"action": d.action.value, "due_at": iso(d.due_at), "rule": d.rule} if d else None,
        "items": [{"sku": s, "quantity": q} for s, q in c.items.items()],
        "description": c.description, "opened_by": c.opened_by.value, "opened_at": iso(c.opened_at),
        "closed_at": iso(c.closed_at), "first_response_at": iso(c.first_response_at),
        "rejection_reason": c.rejection_reason, "escalation_reason": c.escalation_reason,
        "offer": {"kind": c.offer.kind, "refund_fen": c.offer.refund_fen, "made_at": iso(c.offer.made_at)} if c.offer else None,
        "ruling": {"outcome": c.ruling.outcome, "refund_fen": c.ruling.refund_fen, "rationale": c.ruling.rationale,
                   "at": iso(c.ruling.at), "paid_by": c.ruling.paid_by.value if c.ruling.paid_by else None} if c.ruling else None,
        "platform_overdue": c.platform_overdue,
        # M5: where the buyer sends the return — the copy kept when the return was approved (null before, or when the
        # shop had no return address then).
        "return_address": c.return_address.as_dict() if c.return_address else None,
        "return_shipment": {"carrier": c.return_carrier, "tracking_no": c.return_tracking_no,
                            "shipped_at": iso(c.return_shipped_at), "delivered_at": iso(c.return_delivered_at)}
        if c.return_shipped_at else None,
        "replacement_shipment": {"carrier": c.replacement_carrier, "tracking_no": c.replacement_tracking_no,
                                 "shipped_at": iso(c.replacement_shipped_at), "delivered_at": iso(c.replacement_delivered_at)}
        if c.replacement_shipped_at else None,
        "refunds": [refund_view(r) for r in c.refunds(order)] if refunds else None,
        "allowed_actions": [a.value for a in c.allowed_actions(actor, order, policy)],
        "version": c.version,
    }


def eligibility_view(e: Eligibility, *, lang: str, tz: str) -> dict[str, Any]:
    return {
        "options": [
            {"type": o.type.value, "allowed": o.allowed, "rule": o.rule,
             "explanation": i18n.render(o.explanation, lang, tz), "reasons": [r.value for r in o.reasons],
             "deadline": iso(o.deadline), "max_refund_fen": o.max_refund_fen,
             "reason_deadlines": {k: iso(v) for k, v in o.reason_deadlines.items()}, "items": list(o.skus)}
            for o in e.options
        ],
        "cancellations_left": e.cancellations_left,
    }


def event_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "actor": row.actor, "at": iso(row.at), "rules": list(row.rules),
            "order_id": row.order_id, "case_id": row.case_id, "group_id": row.group_id,
            "from_status": row.from_status, "to_status": row.to_status, "data": row.data}
