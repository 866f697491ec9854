"""SQL of the merchant's workbench beyond the queue: complaints awaiting the shop (K2) and the case search (S1)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from aftersales.store import search
from aftersales.store import tables as t


def complaints_awaiting(conn: Connection, merchant_id: str) -> int:
    """Accepted complaints about the shop: each waits for the shop's answer within ``merchant_complaint_hours`` (K2)."""
    c = t.complaints.c
    return int(conn.execute(select(func.count()).select_from(t.complaints)
                            .where(c.merchant_id == merchant_id, c.status == "accepted")).scalar_one())


#: Statuses whose next step is the shop's (S1 "needs my action"); an unpaid refund ruling is ``platform_review``
#: with the P2 advance pending (the shop pays it, or the platform does and recovers it from the deposit).
MERCHANT_STATUSES = ("awaiting_merchant", "awaiting_merchant_receipt", "awaiting_replacement_shipment",
                     "return_in_transit")


def needs_action_rows(conn: Connection, merchant_id: str, *, limit: int) -> list[Any]:
    """The shop's cases waiting for it, nearest deadline first (the merchant_id-led index bounds the scan)."""
    c = t.cases.c
    mine = or_(c.status.in_(MERCHANT_STATUSES),
               and_(c.status == "platform_review", c.due_action == "advance_compensation"))
    stmt = (select(c.id, c.state, c.refunded_fen, c.order_id, c.buyer_id, t.orders.c.state.label("order_state"))
            .join(t.orders, t.orders.c.id == c.order_id)
            .where(c.merchant_id == merchant_id, mine)
            .order_by(c.due_at.asc().nulls_first(), c.id).limit(limit))
    return list(conn.execute(stmt).all())


def _like_prefix(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def case_or_order_prefix(term: str) -> Any:
    """A condition on ``cases``: the case id or its order's id starts with ``term`` (any case, ``%``/``_`` literal)."""
    c, like = t.cases.c, _like_prefix(term.lower())
    return or_(func.lower(c.id).like(like, escape="\\"), func.lower(c.order_id).like(like, escape="\\"))


def search_rows(conn: Connection, merchant_id: str, term: str, *, limit: int) -> list[Any]:
    """Open and closed cases of the shop on orders with a search term starting with ``term`` (lower-case): an order
    id, case id, buyer id, SKU, title or a word of it, or a tracking number (:mod:`aftersales.store.search`). One range
    scan of the index gives at most ``limit`` orders, then their cases by ``ix_cases_order_id``, newest first."""
    ids = search.order_ids(conn, merchant_id, term, limit=limit)
    if not ids:
        return []
    c, o = t.cases.c, t.orders.c
    stmt = (select(c.id, c.state, c.refunded_fen, c.order_id, c.buyer_id, o.state.label("order_state"))
            .join(t.orders, o.id == c.order_id)
            .where(c.merchant_id == merchant_id, c.order_id.in_(ids))
            .order_by(c.opened_at.desc(), c.id.desc()))
    return list(conn.execute(stmt).all())
