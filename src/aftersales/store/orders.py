"""Listing orders (``GET /v1/orders``): keyset pages, newest paid first, scoped to the caller's tenant (T2).

The order is ``paid_at DESC, id DESC`` — stable, since ``id`` is the primary key — and a page continues strictly
after the last row of the previous one, so paging never repeats nor skips an order that existed when it began.
The indexes ``ix_orders_merchant_paid`` (merchant_id, paid_at) and ``ix_orders_paid`` (paid_at) serve the
merchant's and the platform's lists; a buyer's list uses the ``buyer_id`` index.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from . import tables as t


def order_page(conn: Connection, *, merchant_id: str | None = None, buyer_id: str | None = None,
               status: str | None = None, paid_after: datetime | None = None, paid_before: datetime | None = None,
               after: tuple[datetime, str] | None = None, limit: int) -> list[Any]:
    """Up to ``limit + 1`` rows (``id``, ``paid_at``) matching every given filter, newest paid first, continuing
    after ``after`` = (paid_at, id) of the last row already returned. ``paid_after`` is inclusive,
    ``paid_before`` exclusive. The caller passes its tenant as ``merchant_id``/``buyer_id``."""
    o = t.orders.c
    stmt = select(o.id, o.paid_at)
    if merchant_id is not None:
        stmt = stmt.where(o.merchant_id == merchant_id)
    if buyer_id is not None:
        stmt = stmt.where(o.buyer_id == buyer_id)
    if status is not None:
        stmt = stmt.where(o.status == status)
    if paid_after is not None:
        stmt = stmt.where(o.paid_at >= paid_after)
    if paid_before is not None:
        stmt = stmt.where(o.paid_at < paid_before)
    if after is not None:
        paid_at, oid = after
        stmt = stmt.where(or_(o.paid_at < paid_at, and_(o.paid_at == paid_at, o.id < oid)))
    stmt = stmt.order_by(o.paid_at.desc(), o.id.desc()).limit(limit + 1)
    return list(conn.execute(stmt).all())
