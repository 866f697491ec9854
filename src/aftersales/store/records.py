"""What an exported record (D3) reads besides the aggregates: the events of a case and its order, the events of a
complaint, and the ledger transactions of a case."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, or_, select

from . import tables as t
from .ledger import entries_of


def case_events(conn: Connection, case_id: str, order_id: str) -> list[Any]:
    """Every event of the case and every order-level event of its order, in order."""
    ev = t.events.c
    return list(conn.execute(select(t.events).where(
        or_(ev.case_id == case_id, (ev.order_id == order_id) & ev.case_id.is_(None))).order_by(ev.id)).all())


def complaint_events(conn: Connection, complaint_id: str) -> list[Any]:
    ce = t.complaint_events.c
    return list(conn.execute(select(t.complaint_events).where(ce.complaint_id == complaint_id).order_by(ce.id)).all())


def case_transactions(conn: Connection, case_id: str) -> tuple[list[Any], dict[int, list[dict[str, Any]]]]:
    """The ledger transactions of a case, in posting order, with their entries."""
    tx = t.ledger_transactions
    rows = list(conn.execute(select(tx).where(tx.c.case_id == case_id).order_by(tx.c.id)).all())
    return rows, entries_of(conn, [r.id for r in rows])
