"""Rows of the consumer-rights deposit (D1): withdrawal requests and their timers, the merchant's closing, and the
counts the deposit rules read. The deposit's balance is the ledger's (:mod:`aftersales.store.ledger`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from aftersales.domain import deposits as d

from . import tables as t
from .timers import arm_timers


def pending_withdrawals_fen(conn: Connection, merchant_id: str, *, excluding: str | None = None) -> int:
    """What the merchant's pending withdrawal requests (but ``excluding``) hold back."""
    w = t.withdrawals.c
    held = select(func.coalesce(func.sum(w.amount_fen), 0)).where(w.merchant_id == merchant_id, w.status == "pending")
    if excluding is not None:
        held = held.where(w.id != excluding)
    return int(conn.execute(held).scalar_one())


def pending_counts(conn: Connection) -> dict[str, int]:
    """Merchant id → number of pending withdrawal requests."""
    w = t.withdrawals.c
    return {m: int(n) for m, n in conn.execute(
        select(w.merchant_id, func.count()).where(w.status == "pending").group_by(w.merchant_id)).all()}


def merchants_by_name(conn: Connection) -> list[Any]:
    return list(conn.execute(select(t.merchants).order_by(t.merchants.c.name, t.merchants.c.id)).all())


def open_case_count(conn: Connection, merchant_id: str, at: datetime | None = None) -> int:
    """The merchant's open cases (D1); with ``at``, those open at that instant: opened by then and not closed by then
    (an automatic action due later may have closed one already)."""
    c = t.cases.c
    where = [c.merchant_id == merchant_id]
    if at is None:
        where.append(c.status != "closed")
    else:
        where += [c.opened_at <= at, or_(c.closed_at.is_(None), c.closed_at > at)]
    return int(conn.execute(select(func.count()).select_from(t.cases).where(*where)).scalar_one())


def arm(conn: Connection, withdrawal_id: str, version: int, due_at: datetime) -> None:
    """The D1 timer that pays the withdrawal (its stage is the withdrawal's version: a re-armed one leaves the old stale)."""
    arm_timers(conn, [{"subject": "withdrawal", "subject_id": withdrawal_id, "order_id": None,
                       "action": "pay_withdrawal", "stage": version, "rule": "D1", "due_at": due_at}])


def add_withdrawal(conn: Connection, values: dict[str, Any]) -> Any:
    conn.execute(insert(t.withdrawals).values(values))
    return conn.execute(select(t.withdrawals).where(t.withdrawals.c.id == values["id"])).one()


def withdrawals_of(conn: Connection, merchant_id: str) -> list[Any]:
    return list(conn.execute(select(t.withdrawals).where(t.withdrawals.c.merchant_id == merchant_id)
                             .order_by(t.withdrawals.c.requested_at.desc(), t.withdrawals.c.id.desc())).all())


def withdrawal_merchant(conn: Connection, withdrawal_id: str) -> str | None:
    return conn.execute(select(t.withdrawals.c.merchant_id).where(t.withdrawals.c.id == withdrawal_id)).scalar()


def load_withdrawal(conn: Connection, merchant_id: str, withdrawal_id: str) -> d.Withdrawal | None:
    """The merchant's withdrawal request, locked (PostgreSQL), or None."""
    stmt = select(t.withdrawals).where(t.withdrawals.c.id == withdrawal_id, t.withdrawals.c.merchant_id == merchant_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    return None if row is None else withdrawal(row)


def withdrawal(row: Any) -> d.Withdrawal:
    """The domain's withdrawal of a ``withdrawals`` row."""
    return d.Withdrawal(row.id, row.merchant_id, row.amount_fen, row.requested_at, row.due_at,
                        d.WithdrawalStatus(row.status), row.reason, row.completed_at, row.version)


def save_withdrawal(conn: Connection, w: d.Withdrawal) -> Any:
    conn.execute(update(t.withdrawals).where(t.withdrawals.c.id == w.id).values(
        status=w.status.value, reason=w.reason, due_at=w.due_at, completed_at=w.completed_at, version=w.version))
    return conn.execute(select(t.withdrawals).where(t.withdrawals.c.id == w.id)).one()


def close_merchant(conn: Connection, merchant_id: str) -> None:
    conn.execute(update(t.merchants).where(t.merchants.c.id == merchant_id).values(closed=True))


def rulings_awaiting_advance(conn: Connection, merchant_id: str) -> list[Any]:
    """(case id, order id) of the merchant's cases whose refund ruling the platform pays if it does not (P2)."""
    return list(conn.execute(select(t.cases.c.id, t.cases.c.order_id).where(
        t.cases.c.merchant_id == merchant_id, t.cases.c.status == "platform_review",
        t.cases.c.due_action == "advance_compensation")).all())
