"""Rows of the conversation on a case or a complaint (S5, D3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, or_, select

from . import tables as t


def visible_to(role: str) -> Any:
    """The condition for the messages a caller of ``role`` may read: public ones, and for merchant staff and the
    platform their own side's internal notes."""
    m = t.messages.c
    return or_(m.internal.is_(False), m.author == role) if role in ("merchant", "platform") else m.internal.is_(False)


def add(conn: Connection, values: dict[str, Any]) -> Any:
    """Insert a message; returns its row."""
    result = conn.execute(insert(t.messages).values(**values))
    new_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    return conn.execute(select(t.messages).where(t.messages.c.id == new_id)).one()


def rows(conn: Connection, kind: str, subject_id: str, *, where: Any = None, after: int | None = None,
         limit: int | None = None) -> list[Any]:
    """The subject's messages matching ``where``, oldest first (``limit + 1`` of them after id ``after``)."""
    m = t.messages
    stmt = select(m).where(m.c.subject == kind, m.c.subject_id == subject_id)
    if where is not None:
        stmt = stmt.where(where)
    if after is not None:
        stmt = stmt.where(m.c.id > after)
    stmt = stmt.order_by(m.c.id)
    return list(conn.execute(stmt.limit(limit + 1) if limit is not None else stmt).all())
