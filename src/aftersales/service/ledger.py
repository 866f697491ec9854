"""Reading the ledger (D2): transactions with their entries, and balances derived from the entries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from aftersales.domain.ledger import normal_balance
from aftersales.store import tables as t

from .cases import numeric_cursor
from .context import Context, Principal, UnitOfWork, read
from .errors import NotFound


def _own_prefix(who: Principal) -> str | None:
    """The account prefix a caller may read: None for the platform (every account)."""
    if who.role == "platform":
        return None
    return f"{who.role}:{who.subject_id}:"


def transactions(ctx: Context, who: Principal, *, account: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """Every money movement, newest first; a merchant or buyer sees only those touching its own accounts."""
    prefix = _own_prefix(who)
    if account is not None and prefix is not None and not account.startswith(prefix):
        raise NotFound("account", account)
    before = numeric_cursor(cursor)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        tx, en = t.ledger_transactions, t.ledger_entries
        stmt = select(tx)
        if account is not None or prefix is not None:
            touching = select(en.c.transaction_id)
            touching = touching.where(en.c.account == account) if account is not None else touching.where(en.c.account.startswith(prefix or ""))
            stmt = stmt.where(tx.c.id.in_(touching))
        if before is not None:
            stmt = stmt.where(tx.c.id < before)
        rows = uow.conn.execute(stmt.order_by(tx.c.id.desc()).limit(limit + 1)).all()
        page = rows[:limit]
        entries: dict[int, list[dict[str, Any]]] = {r.id: [] for r in page}
        if page:
            for e in uow.conn.execute(select(en).where(en.c.transaction_id.in_(list(entries))).order_by(en.c.id)).all():
                entries[e.transaction_id].append({"account": e.account, "debit_fen": e.debit_fen, "credit_fen": e.credit_fen})
        out: dict[str, Any] = {
            "items": [{"id": r.id, "key": r.key, "kind": r.kind, "at": r.at.isoformat(), "order_id": r.order_id,
                       "case_id": r.case_id, "rule": r.rule, "amount_fen": r.amount_fen, "entries": entries[r.id]} for r in page],
            "next_cursor": str(page[-1].id) if len(rows) > limit else None,
        }
        if account is not None:
            out["balance_fen"] = balance(uow, account)
        return out

    return read(ctx, q)


def account_balance(conn: Connection, account: str) -> int:
    """``account``'s balance on its normal side (D2): always derived from the entries, never stored."""
    en = t.ledger_entries
    credits, debits = conn.execute(select(func.coalesce(func.sum(en.c.credit_fen), 0), func.coalesce(func.sum(en.c.debit_fen), 0))
                                   .where(en.c.account == account)).one()
    return normal_balance(account, int(credits), int(debits))


def balance(uow: UnitOfWork, account: str) -> int:
    """``account``'s balance in a unit of work (see :func:`account_balance`)."""
    return account_balance(uow.conn, account)


def unbalanced_transactions(uow: UnitOfWork) -> list[int]:
    """Ids of transactions whose debits differ from their credits (must always be empty)."""
    en = t.ledger_entries
    rows = uow.conn.execute(select(en.c.transaction_id).group_by(en.c.transaction_id)
                            .having(func.sum(en.c.debit_fen) != func.sum(en.c.credit_fen))).all()
    return [r.transaction_id for r in rows]





def audit(uow: UnitOfWork) -> list[str]:
    """D2 invariants over the whole ledger; an empty list when they hold.

    Every transaction balances; no account but a merchant's debt is below zero on its normal side; per order,
    refunded ≤ paid, and what the orders record as refunded equals what the ledger credited to their buyers."""
    from aftersales.domain.deposits import may_go_negative

    problems = [f"transaction {i} does not balance" for i in unbalanced_transactions(uow)]
    en, tx = t.ledger_entries, t.ledger_transactions
    for row in uow.conn.execute(select(en.c.account, func.sum(en.c.credit_fen).label("c"), func.sum(en.c.debit_fen).label("d"))
                                .group_by(en.c.account)).all():
        value = normal_balance(row.account, int(row.c or 0), int(row.d or 0))
        if value < 0 and not may_go_negative(row.account):
            problems.append(f"account {row.account} is negative: {value}")
    credited: dict[str, int] = {r[0]: int(r[1] or 0) for r in uow.conn.execute(
        select(tx.c.order_id, func.sum(en.c.credit_fen)).join(tx, tx.c.id == en.c.transaction_id)
        .where(tx.c.order_id.is_not(None), en.c.account.like("buyer:%:refunds")).group_by(tx.c.order_id)).all()}
    r = t.refunds.c
    settled_by_order: dict[str, int] = {row[0]: int(row[1] or 0) for row in uow.conn.execute(
        select(r.order_id, func.sum(r.refund_fen)).where(r.status == "settled").group_by(r.order_id)).all()}
    for o in uow.conn.execute(select(t.orders.c.id, t.orders.c.paid_fen, t.orders.c.refunded_fen)).all():
        if o.refunded_fen > o.paid_fen:
            problems.append(f"order {o.id}: refunded {o.refunded_fen} > paid {o.paid_fen}")
        settled = settled_by_order.get(o.id, 0)
        if credited.get(o.id, 0) != settled:
            problems.append(f"order {o.id}: the ledger credited {credited.get(o.id, 0)} to the buyer, the refunds say {settled}")
    return problems
