"""Reading the ledger (D2): transactions with their entries, and balances derived from the entries.

Tenancy by structure (T2): a merchant or a buyer sees the transactions with an entry it owns — the entries' owner
columns equal to its role and id — never those whose account text merely looks like its own."""

from __future__ import annotations

from typing import Any

from aftersales.domain.ledger import Account, OwnerKind
from aftersales.store import ledger as store

from .cases import numeric_cursor
from .context import Context, Principal, UnitOfWork, read
from .errors import NotFound


def _owner(who: Principal) -> tuple[OwnerKind, str] | None:
    """The owner whose accounts a caller may read: None for the platform (every account)."""
    if who.role == "platform":
        return None
    if who.role not in ("merchant", "buyer") or not who.subject_id:
        raise NotFound("account", who.key)
    return OwnerKind(who.role), who.subject_id


def transactions(ctx: Context, who: Principal, *, account: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """Every money movement, newest first; a merchant or buyer sees only those touching its own accounts."""
    owner = _owner(who)
    wanted = Account.parse(account) if account is not None else None
    if wanted is not None and owner is not None and (wanted.owner_kind, wanted.owner_id) != owner:
        raise NotFound("account", account or "")
    before = numeric_cursor(cursor)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        rows, entries = store.transactions_page(uow.conn, owner=owner, account=wanted, before=before, limit=limit)
        page = rows[:limit]
        out: dict[str, Any] = {
            "items": [{"id": r.id, "key": r.key, "kind": r.kind, "at": r.at.isoformat(), "order_id": r.order_id,
                       "case_id": r.case_id, "rule": r.rule, "amount_fen": r.amount_fen, "entries": entries[r.id]} for r in page],
            "next_cursor": str(page[-1].id) if len(rows) > limit else None,
        }
        if wanted is not None:
            out["balance_fen"] = store.balance(uow.conn, wanted)
        return out

    return read(ctx, q)


def balance(uow: UnitOfWork, account: Account | str) -> int:
    """``account``'s balance in a unit of work, on its normal side (D2): derived from the entries, never stored."""
    return store.balance(uow.conn, account if isinstance(account, Account) else Account.parse(account))


def unbalanced_transactions(uow: UnitOfWork) -> list[int]:
    """Ids of transactions whose debits differ from their credits (must always be empty)."""
    return store.unbalanced_transactions(uow.conn)


def audit(uow: UnitOfWork) -> list[str]:
    """D2 invariants over the whole ledger; an empty list when they hold.

    Every transaction balances; no account but a merchant's debt is below zero on its normal side; per order,
    refunded ≤ paid, and what the orders record as refunded equals what the ledger credited to their buyers."""
    from aftersales.domain.deposits import may_go_negative
    from aftersales.domain.ledger import normal_balance

    problems = [f"transaction {i} does not balance" for i in unbalanced_transactions(uow)]
    for account, credits, debits in store.account_totals(uow.conn):
        value = normal_balance(account, credits, debits)
        if value < 0 and not may_go_negative(account):
            problems.append(f"account {account} is negative: {value}")
    credited = store.buyer_refunds_by_order(uow.conn)
    settled_by_order = store.settled_refunds_by_order(uow.conn)
    for o in store.order_totals(uow.conn):
        if o.refunded_fen > o.paid_fen:
            problems.append(f"order {o.id}: refunded {o.refunded_fen} > paid {o.paid_fen}")
        settled = settled_by_order.get(o.id, 0)
        if credited.get(o.id, 0) != settled:
            problems.append(f"order {o.id}: the ledger credited {credited.get(o.id, 0)} to the buyer, the refunds say {settled}")
    return problems
