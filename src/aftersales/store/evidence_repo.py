"""Rows of the evidence on a case or a complaint (D3, K2); the files are in :mod:`aftersales.store.evidence_store`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select

from . import tables as t


def add(conn: Connection, values: dict[str, Any]) -> Any:
    """Insert the evidence row; returns it as stored."""
    conn.execute(insert(t.evidence).values(**values))
    return conn.execute(select(t.evidence).where(t.evidence.c.id == values["id"])).one()


def rows(conn: Connection, kind: str, subject_id: str, *, after: str | None = None, limit: int | None = None) -> list[Any]:
    """The subject's evidence, oldest first (``limit + 1`` rows after id ``after``)."""
    e = t.evidence
    stmt = select(e).where(e.c.subject == kind, e.c.subject_id == subject_id)
    if after is not None:
        stmt = stmt.where(e.c.id > after)
    stmt = stmt.order_by(e.c.id)
    return list(conn.execute(stmt.limit(limit + 1) if limit is not None else stmt).all())


def one(conn: Connection, kind: str, subject_id: str, evidence_id: str) -> Any:
    """The evidence row with this id on this subject, or None."""
    e = t.evidence
    return conn.execute(select(e).where(e.c.id == evidence_id, e.c.subject == kind, e.c.subject_id == subject_id)).first()
