"""SQL of the merchant's workbench beyond the queue: complaints awaiting the shop (K2), the case search, who handles
a case and how many arrived since the queue was shown (S1)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from aftersales.store import search
from aftersales.store import tables as t


def complaints_awaiting(conn: Connection, merchant_id: str) -> int:
    """Accepted complaints about the shop: each waits for the shop's answer within ``merchant_complaint_hours`` (K2)."""
    c = t.complaints.c
    return int(conn.execute(select(func.count()).select_from(t.complaints)
                            .where(c.merchant_id == merchant_id, c.status == "accepted")).scalar_one())


def needs_action_rows(conn: Connection, merchant_id: str, statuses: Iterable[str], *, limit: int) -> list[Any]:
    """The shop's cases in ``statuses`` (those where the shop can have a move, decided by the domain), nearest deadline
    first (the merchant_id-led index bounds the scan)."""
    c = t.cases.c
    stmt = (select(c.id, c.state, c.refunded_fen, c.order_id, c.buyer_id, c.assignee_id,
                   t.orders.c.state.label("order_state"))
            .join(t.orders, t.orders.c.id == c.order_id)
            .where(c.merchant_id == merchant_id, c.status.in_(list(statuses)))
            .order_by(c.due_at.asc().nulls_first(), c.id).limit(limit))
    return list(conn.execute(stmt).all())


# --- S1: who handles a case ------------------------------------------------------------------------------------
def set_assignee(conn: Connection, case_id: str, assignee_id: str | None, *, previous_id: str | None) -> bool:
    """Hand the case to ``assignee_id`` if it is still with ``previous_id`` (False: someone changed it meanwhile)."""
    c = t.cases.c
    held = c.assignee_id.is_(None) if previous_id is None else c.assignee_id == previous_id
    res = conn.execute(update(t.cases).where(c.id == case_id, held).values(assignee_id=assignee_id))
    return bool(res.rowcount == 1)


def shop_user(conn: Connection, merchant_id: str, user_id: str) -> Any:
    """A staff user of the shop (None: no such user, or another shop's, or the platform's)."""
    u = t.users.c
    return conn.execute(select(u.id, u.display_name, u.username)
                        .where(u.id == user_id, u.merchant_id == merchant_id)).first()


def shop_users(conn: Connection, merchant_id: str) -> list[Any]:
    """The shop's staff users, by name (who a case can be assigned to)."""
    u = t.users.c
    return list(conn.execute(select(u.id, u.display_name, u.username).where(u.merchant_id == merchant_id)
                             .order_by(u.display_name, u.id)).all())


def cases_opened_since(conn: Connection, merchant_id: str, since: datetime) -> int:
    """How many of the shop's cases were opened after ``since`` (the queue's "new cases arrived")."""
    c = t.cases.c
    return int(conn.execute(select(func.count()).select_from(t.cases)
                            .where(c.merchant_id == merchant_id, c.opened_at > since)).scalar_one())


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
    stmt = (select(c.id, c.state, c.refunded_fen, c.order_id, c.buyer_id, c.assignee_id, o.state.label("order_state"))
            .join(t.orders, o.id == c.order_id)
            .where(c.merchant_id == merchant_id, c.order_id.in_(ids))
            .order_by(c.opened_at.desc(), c.id.desc()))
    return list(conn.execute(stmt).all())
