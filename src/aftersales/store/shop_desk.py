"""SQL of the merchant's workbench beyond the queue: complaints awaiting the shop (K2), the case search, who handles
a case and how many arrived since the queue was shown (S1)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Text, cast, func, or_, select, update

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
def case_assignees(conn: Connection, case_ids: Iterable[str]) -> dict[str, str | None]:
    """The assignee of each case (cases not found are left out)."""
    ids = list(case_ids)
    if not ids:
        return {}
    c = t.cases.c
    return {r.id: r.assignee_id for r in conn.execute(select(c.id, c.assignee_id).where(c.id.in_(ids))).all()}


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


def search_rows(conn: Connection, merchant_id: str, term: str, *, limit: int) -> list[Any]:
    """Open and closed cases of the shop whose case id, order id or buyer id starts with ``term`` (any case), or whose
    order or case mentions it (SKU, title, tracking number: narrowed here, matched by prefix by the caller).

    The scan is bounded by the shop (``ix_cases_merchant_status_due`` leads with ``merchant_id``); the JSON texts are
    matched as their serialised form, so ``term`` is compared in its JSON-escaped, lower-cased spelling."""
    c, o = t.cases.c, t.orders.c
    low = term.lower()
    escaped = json.dumps(low)[1:-1]
    inside = "%" + _like_prefix(escaped)
    stmt = (select(c.id, c.state, c.refunded_fen, c.order_id, c.buyer_id, c.assignee_id, o.state.label("order_state"))
            .join(t.orders, o.id == c.order_id)
            .where(c.merchant_id == merchant_id,
                   or_(func.lower(c.id).like(_like_prefix(low), escape="\\"),
                       func.lower(c.order_id).like(_like_prefix(low), escape="\\"),
                       func.lower(c.buyer_id).like(_like_prefix(low), escape="\\"),
                       func.lower(cast(o.state, Text)).like(inside, escape="\\"),
                       func.lower(cast(c.state, Text)).like(inside, escape="\\")))
            .order_by(c.opened_at.desc(), c.id.desc()).limit(limit))
    return list(conn.execute(stmt).all())
