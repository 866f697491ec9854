"""SQL of the merchant's workbench beyond the queue: complaints awaiting the shop (K2) and the case search (S1)."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from aftersales.store import tables as t


def complaints_awaiting(conn: Connection, merchant_id: str) -> int:
    """Accepted complaints about the shop: each waits for the shop's answer within ``merchant_complaint_hours`` (K2)."""
    c = t.complaints.c
    return int(conn.execute(select(func.count()).select_from(t.complaints)
                            .where(c.merchant_id == merchant_id, c.status == "accepted")).scalar_one())
