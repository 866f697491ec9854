"""One round trip per step (issue 13): the flush of a unit of work sent as one pipeline on PostgreSQL, the BEGIN with
the first statement, a locked order's cases with its lock, and the category terms kept per process while their change
mark says they are current (store/terms.py). None of it may change what is written, what is read or how a failure
ends: the same rows as statement by statement, a stale version still ``ConcurrentUpdate`` (and retried), a unique
violation anywhere in the batch still an ``IntegrityError`` that leaves nothing behind, a category changed by another
process seen by the next order. Both databases (SQLite sends each statement as it comes: the same assertions hold)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from aftersales.domain import ledger
from aftersales.domain.orders import OrderItem, new_order
from aftersales.service import orders, setup
from aftersales.service.context import PLATFORM, Context, UnitOfWork, run
from aftersales.service.errors import Conflict
from aftersales.store import driver
from aftersales.store import repositories as repo
from aftersales.store import tables as t
from aftersales.store.db import make_engine
from aftersales.store.repositories import ConcurrentUpdate
from aftersales.testing import ensure_merchant, sql_statements

ITEMS = [{"sku": "k1", "title": "Kettle", "category": "kettles", "quantity": 1, "unit_price_fen": 10000}]


def _setup(ctx: Context) -> None:
    ensure_merchant(ctx, "mA", ctx.now())
    _put_kettles(ctx, no_reason_return=True)


def _put_kettles(ctx: Context, *, no_reason_return: bool, name: str = "Kettles") -> None:
    setup.put_category(ctx, PLATFORM, code="kettles", name=name, no_reason_return=no_reason_return,
                       statutory_exclusion=None, after_sales_days=None, warranty_days=None)


def _order(ctx: Context, oid: str, ago: timedelta = timedelta(minutes=5)) -> dict[str, Any]:
    return orders.create_order(ctx, PLATFORM, {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "shipping_fee_fen": 800,
                                               "paid_at": ctx.now() - ago, "items": ITEMS})


def _stored(ctx: Context, oid: str) -> tuple[int, int]:
    """(version, number of events) of a stored order."""
    with ctx.engine.connect() as conn:
        version = conn.execute(select(t.orders.c.version).where(t.orders.c.id == oid)).scalar_one()
        events = len(conn.execute(select(t.events.c.id).where(t.events.c.order_id == oid)).all())
    return int(version), events


def _rows_of(ctx: Context, oid: str) -> dict[str, Any]:
    """What the order ``oid`` has in the tables a flush writes, ids and the order's id taken out."""
    def deep(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(oid, "X")
        if isinstance(value, dict):
            return {k: deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [deep(v) for v in value]
        return value

    def norm(rows: Any) -> list[dict[str, Any]]:
        return [{k: deep(v) for k, v in dict(r).items() if k not in ("id", "transaction_id", "order_id")} for r in rows]
    with ctx.engine.connect() as conn:
        txs = conn.execute(select(t.ledger_transactions).where(t.ledger_transactions.c.order_id == oid)
                           .order_by(t.ledger_transactions.c.id)).mappings().all()
        entries = conn.execute(select(t.ledger_entries).where(t.ledger_entries.c.transaction_id.in_([x["id"] for x in txs]))
                               .order_by(t.ledger_entries.c.id)).mappings().all()
        assert all(e["transaction_id"] in [x["id"] for x in txs] for e in entries)
        return {
            "order": norm(conn.execute(select(t.orders).where(t.orders.c.id == oid)).mappings().all()),
            "events": norm(conn.execute(select(t.events).where(t.events.c.order_id == oid).order_by(t.events.c.id)).mappings()),
            "ledger": norm(txs), "entries": norm(entries),
            "entry_tx": [[x["id"] for x in txs].index(e["transaction_id"]) for e in entries],
            "search": sorted(r.term.replace(oid, "X") for r in conn.execute(
                select(t.search_terms.c.term).where(t.search_terms.c.order_id == oid))),
        }


def test_a_pipelined_flush_writes_the_rows_statement_by_statement_writes(ctx, monkeypatch):
    _setup(ctx)
    _order(ctx, "pipe-1")
    with monkeypatch.context() as m:
        m.setattr(driver, "pipelined", lambda conn: False)  # every statement as it comes, as before
        _order(ctx, "one-1")
    a, b = _rows_of(ctx, "pipe-1"), _rows_of(ctx, "one-1")
    assert a["events"] and a["ledger"] and a["entries"] and a["search"]
    assert a == b


def test_a_stale_version_in_a_pipelined_batch_is_a_concurrent_update_and_nothing_is_written(ctx):
    _setup(ctx)
    _order(ctx, "stale-1")
    before = _stored(ctx, "stale-1")
    with UnitOfWork(ctx) as uow:
        order = uow.tracker.get_order("stale-1")
        assert order is not None
        # Somebody else's commit, as the optimistic check sees it: the row no longer carries the version loaded.
        uow.conn.execute(update(t.orders).where(t.orders.c.id == "stale-1").values(version=t.orders.c.version + 1))
        order.version += 1
        with pytest.raises(ConcurrentUpdate):
            uow.commit()
    assert _stored(ctx, "stale-1") == before


def test_a_stale_version_before_a_unique_violation_is_still_a_concurrent_update(ctx):
    """Statement by statement the check raised before the later insert was sent; in a pipeline the insert's error
    arrives with the check's rowcount, and the stale version is still what the unit of work is told (it retries)."""
    _setup(ctx)
    _order(ctx, "stale-2")
    with UnitOfWork(ctx) as uow:
        order = uow.tracker.get_order("stale-2")
        assert order is not None
        uow.conn.execute(update(t.orders).where(t.orders.c.id == "stale-2").values(version=t.orders.c.version + 1))
        order.version += 1
        uow.tracker.post(ledger.payment_transaction(order))  # its key is taken already: a unique violation after it
        with pytest.raises(ConcurrentUpdate):
            uow.commit()


def test_a_concurrent_update_is_retried_by_run(ctx):
    _setup(ctx)
    _order(ctx, "retry-1")
    version, _ = _stored(ctx, "retry-1")
    attempts: list[int] = []

    def cmd(uow: UnitOfWork) -> None:
        attempts.append(1)
        order = uow.tracker.get_order("retry-1")
        assert order is not None
        if len(attempts) == 1:  # the first attempt meets a commit made under it
            uow.conn.execute(update(t.orders).where(t.orders.c.id == "retry-1").values(version=t.orders.c.version + 1))
        order.version += 1

    run(ctx, cmd)
    assert len(attempts) == 2
    assert _stored(ctx, "retry-1")[0] == version + 1


def test_a_unique_violation_inside_the_batch_rolls_back_all_of_it(ctx):
    _setup(ctx)
    _order(ctx, "dup-1")
    before, rows_before = _stored(ctx, "dup-1"), _rows_of(ctx, "dup-1")
    with UnitOfWork(ctx) as uow:
        order = uow.tracker.get_order("dup-1", lock=True)
        assert order is not None
        order.version += 1  # written before the ledger's insert fails
        uow.tracker.post(ledger.payment_transaction(order))  # the payment is posted already: its key is taken
        with pytest.raises(IntegrityError):
            uow.commit()
    assert _stored(ctx, "dup-1") == before and _rows_of(ctx, "dup-1") == rows_before

    def cmd(uow: UnitOfWork) -> None:
        order = uow.tracker.get_order("dup-1", lock=True)
        assert order is not None
        uow.tracker.post(ledger.payment_transaction(order))

    with pytest.raises(Conflict):  # what the API answers 409 with, as before
        run(ctx, cmd)
    assert _stored(ctx, "dup-1") == before


def test_the_first_statement_opens_the_transaction_that_commit_and_rollback_end(ctx, database):
    _setup(ctx)
    _order(ctx, "tx-1")
    with UnitOfWork(ctx) as uow:
        assert uow.tracker.order_exists("tx-1")  # the transaction's first statement (PostgreSQL: BEGIN with it)
        if database.kind == "postgresql":
            raw: Any = uow.conn.connection.driver_connection
            assert not raw.autocommit and raw.info.transaction_status.name == "INTRANS"
        uow.conn.execute(update(t.orders).where(t.orders.c.id == "tx-1").values(refunded_fen=7))
    assert _rows_of(ctx, "tx-1")["order"][0]["refunded_fen"] == 0  # rolled back
    with UnitOfWork(ctx) as uow:
        assert uow.tracker.order_exists("tx-1")
        uow.conn.execute(update(t.orders).where(t.orders.c.id == "tx-1").values(refunded_fen=7))
        uow.tx.commit()
    assert _rows_of(ctx, "tx-1")["order"][0]["refunded_fen"] == 7


def test_the_BEGIN_sent_with_the_first_statement_is_psycopgs_own(database):
    """The isolation level the engine asks for is the transaction's (psycopg's BEGIN statement, sent in the pipeline)."""
    if database.kind != "postgresql":
        pytest.skip("PostgreSQL's BEGIN")
    engine = make_engine(database.url, schema=database.schema).execution_options(isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn:
            assert driver.execute(conn, repo._ORDER_EXISTS, {"order_id": "none"}).first() is None
            assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "repeatable read"
    finally:
        engine.dispose()


def test_a_category_changed_by_another_process_is_seen_by_the_next_order(ctx, database):
    """Two engines on one database: two processes. This one keeps a copy of the terms (PostgreSQL); the other changes
    them — through the service and by hand — and this one's next order and next read see the change at once."""
    _setup(ctx)
    other = Context(engine=make_engine(database.url, schema=database.schema), policy=ctx.policy, clock=ctx.clock)
    try:
        _order(ctx, "terms-1")
        _order(ctx, "terms-2")  # the copy is current: read from it
        with sql_statements(ctx.engine) as seen:
            _order(ctx, "terms-3")
        terms_reads = [s for s, _ in seen if "FROM categories" in s or "FROM category_versions" in s
                       or "JOIN categories" in s or "JOIN category_versions" in s]
        if database.kind == "postgresql":
            assert terms_reads == [], "a current copy needs no statement"
        else:
            assert terms_reads

        _put_kettles(other, no_reason_return=False)  # another process: a new terms version, in force from now
        _order(ctx, "terms-4", ago=timedelta(0))
        with UnitOfWork(ctx, readonly=True) as uow:
            old, new = uow.tracker.get_order("terms-3"), uow.tracker.get_order("terms-4")
        assert old is not None and new is not None
        assert (old.terms["kettles"].version, old.terms["kettles"].no_reason_return) == (1, True)
        assert (new.terms["kettles"].version, new.terms["kettles"].no_reason_return) == (2, False)

        with other.engine.begin() as conn:  # by hand (psql, a script): the mark moves all the same
            conn.execute(text("UPDATE categories SET name = 'Electric kettles' WHERE code = 'kettles'"))
        with UnitOfWork(ctx) as uow:
            uow.tracker.order_exists("terms-4")
            assert repo.merchant(uow.conn, "mA") is not None
            assert repo.categories(uow.conn)["kettles"].name == "Electric kettles"
        _order(ctx, "terms-5", ago=timedelta(0))
        with UnitOfWork(ctx, readonly=True) as uow:
            latest = uow.tracker.get_order("terms-5")
        assert latest is not None and latest.terms["kettles"].name == "Electric kettles"
    finally:
        other.engine.dispose()


def test_a_copy_read_by_a_transaction_that_rolled_back_is_never_taken_for_the_database(ctx, database):
    """A transaction that changes the terms, reads them (with its own mark) and rolls back leaves a copy under a mark
    no committed state will ever carry (a sequence): the next reader reads the rows again."""
    _setup(ctx)
    with UnitOfWork(ctx) as uow:
        uow.conn.execute(text("UPDATE categories SET name = 'Never' WHERE code = 'kettles'"))
        assert repo.categories(uow.conn)["kettles"].name == "Never"
    _order(ctx, "rb-1")
    with UnitOfWork(ctx) as uow:
        assert repo.merchant(uow.conn, "mA") is not None
        assert repo.categories(uow.conn)["kettles"].name == "Kettles"
    with UnitOfWork(ctx, readonly=True) as uow:
        order = uow.tracker.get_order("rb-1")
    assert order is not None and order.terms["kettles"].name == "Kettles"


def test_a_merchant_row_read_with_the_mark_is_the_merchant_row(ctx, monkeypatch):
    _setup(ctx)
    with UnitOfWork(ctx, readonly=True) as uow:
        marked = repo.merchant(uow.conn, "mA")
        missing = repo.merchant(uow.conn, "nobody")
    with monkeypatch.context() as m:
        m.setattr(repo.terms_store, "keeps_copy", lambda conn: False)
        with UnitOfWork(ctx, readonly=True) as uow:
            plain = repo.merchant(uow.conn, "mA")
    assert missing is None and tuple(marked) == tuple(plain) and marked._fields == plain._fields
    assert marked.closed == plain.closed and marked.created_at == plain.created_at
    assert isinstance(marked.created_at, datetime) and marked.created_at.tzinfo is not None


def test_a_unique_violation_before_the_version_checks_is_still_an_integrity_error(ctx):
    """The checked updates come after the failing insert: their results never arrive, and no stale version may be
    made up from them — the unit of work is told of the unique violation (409), as statement by statement."""
    _setup(ctx)
    for oid in ("early-1", "early-2", "early-3"):
        _order(ctx, oid)
    with UnitOfWork(ctx, readonly=True) as uow:
        again = uow.tracker.get_order("early-3")
    assert again is not None
    with UnitOfWork(ctx) as uow:
        uow.tracker.load_orders(["early-1", "early-2"], lock=True)
        for oid in ("early-1", "early-2"):  # two checked rows: one executemany in the pipeline
            order = uow.tracker.get_order(oid)
            assert order is not None
            order.version += 1
        uow.tracker.add_order(again)  # its id is taken: the orders' insert fails, before the updates
        with pytest.raises(IntegrityError):
            uow.commit()


def test_only_the_version_checks_whose_result_arrived_count_after_a_failure():
    class Cursor:
        def __init__(self, status: str | None, rowcount: int) -> None:
            self.statusmessage, self.rowcount = status, rowcount

    arrived_stale = driver.Pending(Cursor("UPDATE 0", 0))
    never_arrived = driver.Pending(Cursor(None, 0))  # an executemany's count before any result: 0, not -1
    repo._check_versions([(never_arrived, 2, "o1,o2")], arrived_only=True)  # the failure is what is reported
    with pytest.raises(ConcurrentUpdate):
        repo._check_versions([(never_arrived, 2, "o1,o2"), (arrived_stale, 1, "o3")], arrived_only=True)
    with pytest.raises(ConcurrentUpdate):
        repo._check_versions([(never_arrived, 2, "o1,o2")])
    assert driver.Pending(rowcount=3).arrived and driver.Pending(rowcount=3).rowcount == 3


def _subscribe(conn: Any, sub_id: str, merchant_id: str | None) -> None:
    """A subscription written by hand (another process, psql): the change mark moves all the same (migration 0028)."""
    conn.execute(t.webhook_subscriptions.insert().values(
        id=sub_id, merchant_id=merchant_id, url="https://hooks.example.com/in", secret="s" * 32, event_types=[],
        active=True, created_at=datetime(2026, 12, 7, 12, 0, tzinfo=UTC)))


def _outbox(ctx: Context, oid: str) -> int:
    with ctx.engine.connect() as conn:
        events = select(t.events.c.id).where(t.events.c.order_id == oid)
        return len(conn.execute(select(t.webhook_outbox.c.id).where(t.webhook_outbox.c.event_id.in_(events))).all())


def test_the_events_of_a_merchant_nobody_subscribes_to_need_no_question_until_a_subscription_changes(ctx, database):
    """SEC2's outbox gets a unit of work's events only when a subscription may want them. PostgreSQL answers from
    the process's copy of the active subscriptions while the change mark is the copy's — no statement — and a
    subscription made, disabled or deleted by another process moves the mark: the very next unit of work asks."""
    _setup(ctx)
    ensure_merchant(ctx, "mB", ctx.now())
    other = Context(engine=make_engine(database.url, schema=database.schema), policy=ctx.policy, clock=ctx.clock)
    try:
        _order(ctx, "sub-1")
        with sql_statements(ctx.engine) as seen:
            _order(ctx, "sub-2")
        asked = [s for s, _ in seen if "webhook_subscriptions" in s]
        assert (asked == []) if database.kind == "postgresql" else asked
        assert _outbox(ctx, "sub-2") == 0

        with other.engine.begin() as conn:
            _subscribe(conn, "whB", "mB")  # another merchant's: mA's events are still nobody's
        _order(ctx, "sub-3")
        assert _outbox(ctx, "sub-3") == 0
        with other.engine.begin() as conn:
            _subscribe(conn, "whA", "mA")
        _order(ctx, "sub-4")
        assert _outbox(ctx, "sub-4") > 0
        with other.engine.begin() as conn:
            conn.execute(update(t.webhook_subscriptions).where(t.webhook_subscriptions.c.id == "whA").values(active=False))
        _order(ctx, "sub-5")
        assert _outbox(ctx, "sub-5") == 0
        with other.engine.begin() as conn:
            _subscribe(conn, "whAll", None)  # platform-wide: every merchant's events
        _order(ctx, "sub-6")
        assert _outbox(ctx, "sub-6") > 0
    finally:
        other.engine.dispose()


def test_a_subscription_copy_read_by_a_transaction_that_rolled_back_is_never_taken_for_the_database(ctx):
    """A transaction that adds a subscription, flushes events (reading the subscriptions with its own mark) and rolls
    back leaves a copy under a mark no committed state carries: the next unit of work asks again."""
    _setup(ctx)
    _order(ctx, "rbs-1")
    with UnitOfWork(ctx) as uow:
        _subscribe(uow.conn, "whNever", "mA")
        assert uow.tracker.get_order("rbs-1", lock=True) is not None  # reads the mark, this transaction's own
        uow.tracker.add_order(new_order(id="rbs-x", merchant_id="mA", buyer_id="bX", paid_at=ctx.now(), shipping_fee_fen=0,
                                        items=[OrderItem("k1", "Kettle", "kettles", 1, 100)]))
        uow.tracker.flush()
        events = select(t.events.c.id).where(t.events.c.order_id == "rbs-x")
        assert uow.conn.execute(select(t.webhook_outbox.c.id).where(t.webhook_outbox.c.event_id.in_(events))).all()
    _order(ctx, "rbs-2")
    assert _outbox(ctx, "rbs-2") == 0
