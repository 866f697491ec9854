"""Reading the ledger (D2): transactions with their entries, and balances derived from the entries.

Tenancy by structure (T2): a merchant or a buyer sees the transactions with an entry it owns — the entries' owner
columns equal to its role and id — never those whose account text merely looks like its own."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from aftersales.domain.errors import InvalidInput
from aftersales.domain.ledger import Account, OwnerKind
from aftersales.domain.messages import N_
from aftersales.domain.timeutil import day_window_end
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


def check_period(at_after: datetime | None, at_before: datetime | None) -> None:
    """D2: a period of the ledger is two instants with a UTC offset, ``at_after`` (inclusive) before ``at_before``
    (exclusive); anything else is refused (422, rule D2) — never read as an empty or a whole ledger."""
    for value in (at_after, at_before):
        if value is not None and value.tzinfo is None:
            raise InvalidInput("D2", N_("A period starts and ends at instants with a UTC offset."))
    if at_after is not None and at_before is not None and at_after >= at_before:
        raise InvalidInput("D2", N_("The period must start before it ends."))


def local_period(first_day: str, last_day: str, tz: str) -> tuple[datetime | None, datetime | None]:
    """Local days ``first_day``..``last_day`` (``YYYY-MM-DD``, both included, either may be empty) in the platform
    time zone (T0) as the instants ``at_after`` (inclusive) and ``at_before`` (exclusive) of :func:`transactions`."""
    def day(text: str, field: str) -> date | None:
        if not text:
            return None
        try:
            if len(text) != 10:
                raise ValueError(text)
            return date.fromisoformat(text)
        except ValueError:
            raise InvalidInput("D2", N_("{field} is not a date (YYYY-MM-DD)."), field=field) from None

    first, last = day(first_day.strip(), "from"), day(last_day.strip(), "to")
    at_after = day_window_end(first, -1, tz) if first is not None else None
    at_before = day_window_end(last, 0, tz) if last is not None else None
    check_period(at_after, at_before)
    return at_after, at_before


EXPORT_PAGE = 200


def export_entries(ctx: Context, who: Principal, *, account: str | None, at_after: datetime | None,
                   at_before: datetime | None) -> list[dict[str, Any]]:
    """Every transaction of :func:`transactions` (all its pages, newest first) for an export, each one line per
    entry: nothing is left out or capped."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = transactions(ctx, who, account=account, cursor=cursor, limit=EXPORT_PAGE, at_after=at_after,
                            at_before=at_before)
        out.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def transactions(ctx: Context, who: Principal, *, account: str | None, cursor: str | None, limit: int,
                 at_after: datetime | None = None, at_before: datetime | None = None) -> dict[str, Any]:
    """Every money movement, newest first; a merchant or buyer sees only those touching its own accounts. With
    ``at_after`` (inclusive) and/or ``at_before`` (exclusive): only those booked in that period."""
    check_period(at_after, at_before)
    owner = _owner(who)
    wanted = Account.parse(account) if account is not None else None
    if wanted is not None and owner is not None and (wanted.owner_kind, wanted.owner_id) != owner:
        raise NotFound("account", account or "")
    before = numeric_cursor(cursor)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        rows, entries = store.transactions_page(uow.conn, owner=owner, account=wanted, before=before, limit=limit,
                                               at_after=at_after, at_before=at_before)
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
