"""The ledger's rows (D2): the ONE writer of ledger transactions and entries (:func:`write`), and the reads.

Every posting of the application reaches the database through :func:`write`: the unit of work's flush
(:meth:`aftersales.store.repositories.Tracker.flush`) writes what the domain returned — order payments and
refunds, deposit top-ups, withdrawals, penalties, compensations, and the recoveries :func:`with_recoveries` adds —
and the bulk import hands its payments to the same function. Each entry carries its account's owner (kind and
id) in columns of its own: every listing filters on them by equality, never by matching the account's text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, insert, literal, select

from aftersales.domain import deposits as d
from aftersales.domain import ledger
from aftersales.domain.ledger import Account, OwnerKind

from . import tables as t
from .bulk import PreparedRows, insert_returning_ids, insert_rows, new_ids
from .driver import Pipeline, numbered

TX_COLS = ("id", "key", "kind", "at", "order_id", "case_id", "rule", "amount_fen")
ENTRY_COLS = ("transaction_id", "account", "owner_kind", "owner_id", "debit_fen", "credit_fen")


def write(conn: Connection, transactions: Sequence[ledger.Transaction], q: Pipeline | None = None) -> None:
    """Append balanced ledger transactions (D2) with their entries: the only code that writes ledger rows.

    A few transactions (the usual unit of work) go in as one ``INSERT … RETURNING`` that gives back their ids
    (:func:`~aftersales.store.bulk.insert_returning_ids`); more get their ids first
    (:func:`~aftersales.store.bulk.new_ids`), so that both tables go in as one batch each — a prepared executemany,
    or COPY / the driver's executemany for many (the bulk import). The entries follow as one batch.

    ``q``: a pipeline sending the unit of work's flush in one round trip (store/driver.py :func:`pipeline`): the
    transactions' ids are not read back there — each entry finds its transaction by its key (unique) in the same
    statement, the ids being the ones the transactions' insert just took."""
    if not transactions:
        return
    if q is not None and q.together:
        q.insert(t.ledger_transactions, [_tx_values(tx) for tx in transactions])
        entries = [{"tx_key": tx.key, **dict(zip(ENTRY_COLS[1:], _entry(e), strict=True))}
                   for tx in transactions for e in tx.entries]
        if entries:  # one statement: the entries take their ids in posting order, as one by one
            n = len(entries)
            stmt = _ENTRIES_OF_KEYS.get(n)
            if stmt is None:  # n entries, each of the transaction whose key is its tx_key: built once per n
                stmt = _ENTRIES_OF_KEYS[n] = insert(_EN).values([
                    {"transaction_id": select(_TX.c.id).where(_TX.c.key == bindparam(f"tx_key__{i}", type_=_TX.c.key.type))
                     .scalar_subquery(), **{c: bindparam(f"{c}__{i}", type_=_EN.c[c].type) for c in ENTRY_COLS[1:]}}
                    for i in range(n)])
            q.send(stmt, [numbered(entries)])
        return
    ids = insert_returning_ids(conn, t.ledger_transactions, [_tx_values(tx) for tx in transactions]) \
        if conn.in_transaction() else None
    if ids is None:
        ids = new_ids(conn, t.ledger_transactions, len(transactions))
        if ids is None:  # outside a transaction: the database numbers them
            ids = [int(i) for i in conn.execute(
                insert(t.ledger_transactions).returning(t.ledger_transactions.c.id, sort_by_parameter_order=True),
                [_tx_values(tx) for tx in transactions]).scalars().all()]
        else:
            insert_rows(conn, t.ledger_transactions, TX_COLS, [_tx_row(i, tx) for i, tx in zip(ids, transactions, strict=True)])
    insert_rows(conn, t.ledger_entries, ENTRY_COLS, [
        (i, *_entry(e)) for i, tx in zip(ids, transactions, strict=True) for e in tx.entries])


def unnumbered_rows(transactions: Sequence[ledger.Transaction]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[int]]:
    """The rows :func:`write` appends for ``transactions``, before the database numbers them (the bulk import's
    builder processes, :class:`~aftersales.store.bulk.PreparedRows`): the transactions' rows without ``id``
    (``TX_COLS[1:]``), the entries' rows without ``transaction_id`` (``ENTRY_COLS[1:]``), and per entry the index of
    its transaction."""
    txs = [_tx_row(0, tx)[1:] for tx in transactions]
    entries = [_entry(e) for tx in transactions for e in tx.entries]
    of = [n for n, tx in enumerate(transactions) for _ in tx.entries]
    return txs, entries, of


def prepare(rows: PreparedRows, transactions: Sequence[ledger.Transaction]) -> None:
    """Add to ``rows`` (rows in driver form, written later in the transaction: the bulk import's builder processes)
    the rows :func:`write` appends for ``transactions`` — the same rows (:func:`unnumbered_rows`), numbered when
    written as :func:`write` numbers them (:func:`~aftersales.store.bulk.new_ids`). Only for transactions that need
    no recovery (P2 reads balances: :func:`with_recoveries`)."""
    txs, entries, of = unnumbered_rows(transactions)
    rows.add(t.ledger_transactions, TX_COLS[1:], txs, numbered=True)
    rows.add(t.ledger_entries, ENTRY_COLS[1:], entries, refs=("transaction_id", "ledger_transactions", of))


def _entry(e: ledger.Entry) -> tuple[Any, ...]:
    """An entry's row (``ENTRY_COLS``) without its transaction's id."""
    return (e.account.text, e.account.owner_kind.value, e.account.owner_id, e.debit_fen, e.credit_fen)


_TX, _EN = t.ledger_transactions, t.ledger_entries


#: The statements of :func:`write`'s pipelined entries, by number of entries (parameters
#: :func:`~aftersales.store.driver.numbered`; fewer than the bulk size, store/bulk.py ``BULK_ROWS``).
_ENTRIES_OF_KEYS: dict[int, Any] = {}


def _tx_row(tx_id: int, tx: ledger.Transaction) -> tuple[Any, ...]:
    return (tx_id, tx.key, tx.kind, tx.at, tx.order_id, tx.case_id, tx.rule, tx.amount_fen)


def _tx_values(tx: ledger.Transaction) -> dict[str, Any]:
    """A transaction's row without its id (the database numbers it)."""
    return dict(zip(TX_COLS[1:], _tx_row(0, tx)[1:], strict=True))


# --- P2: recoveries, in the transaction of what they recover ----------------------------------------------------
def lock_merchant(conn: Connection, merchant_id: str) -> Row[Any] | None:
    """The merchant's row, locked until the end of the transaction on PostgreSQL (SQLite: the writer lock)."""
    stmt = select(t.merchants).where(t.merchants.c.id == merchant_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first()


def held(conn: Connection, merchant_id: str) -> tuple[int, int]:
    """The merchant's deposit and its debt (shown positive), from the ledger."""
    return balance(conn, d.deposit_account(merchant_id)), max(0, -balance(conn, d.debt_account(merchant_id)))


def with_recoveries(conn: Connection, postings: list[ledger.Transaction]) -> list[ledger.Transaction]:
    """What :func:`aftersales.domain.deposits.recover_advances` adds to ``postings``, with the balances it needs read
    under a lock on each merchant concerned (in id order), so that concurrent recoveries each see the last one."""
    advances, covered = d.recovery_merchants(postings)
    if not advances and not covered:
        return []
    deposits: dict[str, d.DepositState] = {}
    for merchant_id in sorted(advances | covered):  # lock in id order
        lock_merchant(conn, merchant_id)
        deposits[merchant_id] = d.DepositState(*held(conn, merchant_id), required_fen=0)
    sales = {m: balance(conn, ledger.merchant_sales(m)) for m in covered}
    return d.recover_advances(postings, deposits, sales)


# --- reads ----------------------------------------------------------------------------------------------------
def account_of(kind: str, owner_id: str, text: str) -> Account:
    """The account of a stored entry, from its owner columns (its kind is what its text adds to them)."""
    return Account(OwnerKind(kind), owner_id, text[len(kind) + len(owner_id) + 2:])


def balance(conn: Connection, account: Account) -> int:
    """``account``'s balance on its normal side (D2): always derived from the entries, never stored."""
    en = t.ledger_entries
    credits, debits = conn.execute(select(func.coalesce(func.sum(en.c.credit_fen), 0), func.coalesce(func.sum(en.c.debit_fen), 0))
                                   .where(en.c.account == account.text)).one()
    return ledger.normal_balance(account, int(credits), int(debits))


def transactions_page(conn: Connection, *, owner: tuple[OwnerKind, str] | None, account: Account | None,
                      before: int | None, limit: int, at_after: datetime | None = None,
                      at_before: datetime | None = None) -> tuple[list[Any], dict[int, list[dict[str, Any]]]]:
    """Up to ``limit + 1`` transactions, newest first, below id ``before``: those with an entry of ``owner``
    (kind and id, by equality) and/or on ``account``, booked at or after ``at_after`` and before ``at_before``;
    with the entries of the first ``limit``."""
    tx, en = t.ledger_transactions, t.ledger_entries
    stmt = select(tx)
    if account is not None or owner is not None:
        touching = select(en.c.transaction_id)
        if owner is not None:
            touching = touching.where(en.c.owner_kind == owner[0].value, en.c.owner_id == owner[1])
        if account is not None:
            touching = touching.where(en.c.owner_kind == account.owner_kind.value, en.c.owner_id == account.owner_id,
                                      en.c.account == account.text)
        stmt = stmt.where(tx.c.id.in_(touching))
    if before is not None:
        stmt = stmt.where(tx.c.id < before)
    if at_after is not None:
        stmt = stmt.where(tx.c.at >= at_after)
    if at_before is not None:
        stmt = stmt.where(tx.c.at < at_before)
    rows = list(conn.execute(stmt.order_by(tx.c.id.desc()).limit(limit + 1)).all())
    return rows, entries_of(conn, [r.id for r in rows[:limit]])


def entries_of(conn: Connection, transaction_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The entries of these transactions as the API shows them, in posting order."""
    en = t.ledger_entries
    entries: dict[int, list[dict[str, Any]]] = {i: [] for i in transaction_ids}
    if transaction_ids:
        for e in conn.execute(select(en).where(en.c.transaction_id.in_(transaction_ids)).order_by(en.c.id)).all():
            entries[e.transaction_id].append({"account": e.account, "debit_fen": e.debit_fen, "credit_fen": e.credit_fen})
    return entries


def unbalanced_transactions(conn: Connection) -> list[int]:
    """Ids of transactions whose debits differ from their credits (must always be empty)."""
    en = t.ledger_entries
    rows = conn.execute(select(en.c.transaction_id).group_by(en.c.transaction_id)
                        .having(func.sum(en.c.debit_fen) != func.sum(en.c.credit_fen))).all()
    return [r.transaction_id for r in rows]


def account_totals(conn: Connection) -> list[tuple[Account, int, int]]:
    """Every account with the sums of its credits and debits."""
    en = t.ledger_entries
    rows = conn.execute(select(en.c.account, en.c.owner_kind, en.c.owner_id, func.sum(en.c.credit_fen).label("c"),
                               func.sum(en.c.debit_fen).label("d")).group_by(en.c.account, en.c.owner_kind, en.c.owner_id)).all()
    return [(account_of(r.owner_kind, r.owner_id, r.account), int(r.c or 0), int(r.d or 0)) for r in rows]


def buyer_refunds_by_order(conn: Connection) -> dict[str, int]:
    """Per order, what the ledger credited to its buyers' refund accounts."""
    en, tx = t.ledger_entries, t.ledger_transactions
    return {r[0]: int(r[1] or 0) for r in conn.execute(
        select(tx.c.order_id, func.sum(en.c.credit_fen)).join(tx, tx.c.id == en.c.transaction_id)
        .where(tx.c.order_id.is_not(None), en.c.owner_kind == OwnerKind.BUYER.value,
               en.c.account == literal("buyer:") + en.c.owner_id + literal(":refunds")).group_by(tx.c.order_id)).all()}


def settled_refunds_by_order(conn: Connection) -> dict[str, int]:
    """Per order, the refund amounts its settled refunds say were paid to the buyer."""
    r = t.refunds.c
    return {row[0]: int(row[1] or 0) for row in conn.execute(
        select(r.order_id, func.sum(r.refund_fen)).where(r.status == "settled").group_by(r.order_id)).all()}


def order_totals(conn: Connection) -> list[Any]:
    """Every order's id, paid and refunded amounts."""
    return list(conn.execute(select(t.orders.c.id, t.orders.c.paid_fen, t.orders.c.refunded_fen)).all())
