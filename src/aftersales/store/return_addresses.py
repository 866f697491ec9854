"""Rows of the shops' return-address books (M1, M5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from . import tables as t

A = t.return_addresses


def lock_book(conn: Connection, merchant_id: str) -> bool:
    """Lock the shop's row (PostgreSQL) so that changes to its book, and its one default, go one after the other.
    False: no such shop."""
    return conn.execute(select(t.merchants.c.id).where(t.merchants.c.id == merchant_id).with_for_update()).first() is not None


def rows(conn: Connection, merchant_id: str, *, archived: bool = False) -> list[Any]:
    """The shop's addresses, default first, then oldest first; archived ones only when asked."""
    q = select(A).where(A.c.merchant_id == merchant_id)
    if not archived:
        q = q.where(A.c.archived_at.is_(None))
    return list(conn.execute(q.order_by(A.c.is_default.desc(), A.c.created_at, A.c.id)))


def row(conn: Connection, merchant_id: str, address_id: str) -> Any:
    return conn.execute(select(A).where(A.c.merchant_id == merchant_id, A.c.id == address_id)).first()


def default(conn: Connection, merchant_id: str) -> Any:
    return conn.execute(select(A).where(A.c.merchant_id == merchant_id, A.c.is_default.is_(True))).first()


def add(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(A).values(**values))


def change(conn: Connection, address_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(A).where(A.c.id == address_id).values(**values))


def clear_default(conn: Connection, merchant_id: str, now: datetime) -> None:
    conn.execute(update(A).where(A.c.merchant_id == merchant_id, A.c.is_default.is_(True))
                 .values(is_default=False, version=A.c.version + 1, updated_at=now))
