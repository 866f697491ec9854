"""Repositories: every query lives here. Aggregates are loaded with a lock when they will be changed,
and written back (state, projections, events, timers, ledger postings) by :meth:`Tracker.flush` in the same
transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Connection, String, any_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError

from aftersales.domain import ledger
from aftersales.domain.cases import Case
from aftersales.domain.catalog import Category, StatutoryExclusion
from aftersales.domain.events import Event
from aftersales.domain.groups import Group, GroupStatus
from aftersales.domain.orders import Order, RefundStatus

from . import driver, search
from . import ledger as ledger_store
from . import tables as t
from . import terms as terms_store
from . import webhooks as webhooks_store
from .bulk import BULK_ROWS, RETURNING_ROWS, insert_dicts, insert_returning_ids, insert_rows, new_ids, update_rows
from .codec import encode, from_dict
from .timers import arm_timers


class ConcurrentUpdate(Exception):
    """Somebody else changed the aggregate since it was loaded (optimistic check)."""


#: Called with (connection, [(event id, event, merchant id)]) for every event written: the outbox hook.
EventHook = Callable[[Connection, list[tuple[int, Event, str]]], None]


def one_of(conn: Connection, column: Any, values: Sequence[Any]) -> Any:
    """``column IN values``. On PostgreSQL ``column = ANY(:array)``: one parameter, so that the statement is the same
    for any number of values and is prepared once, instead of a new statement with thousands of parameters each time."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(BigInteger if isinstance(column.type, BigInteger) else String)))
    return column.in_(values)


def order_values(order: Order) -> dict[str, Any]:
    """The ``orders`` row of an order (its JSON state and the columns projected from it), without the id."""
    return {"merchant_id": order.merchant_id, "buyer_id": order.buyer_id, "group_id": order.group_id,
            "status": order.status.value, "paid_fen": order.paid_fen, "refunded_fen": order.refunded_fen,
            "paid_at": order.paid_at, "version": order.version, "state": encode(order)}


@dataclass
class Tracker:
    """Identity map of the aggregates a unit of work has loaded or added, with the versions seen."""

    conn: Connection
    now: datetime
    on_events: EventHook | None = None
    #: order id → (order, version loaded, {case id: (version loaded, stage loaded)})
    orders: dict[str, tuple[Order, int | None, dict[str, tuple[int, int]]]] = field(default_factory=dict)
    groups: dict[str, tuple[Group, int | None]] = field(default_factory=dict)
    #: order id → {refund key: status as stored}
    refund_status: dict[str, dict[str, RefundStatus]] = field(default_factory=dict)
    #: Ledger transactions the domain returned (deposits, remedies), posted at the next flush with the orders' own.
    postings: list[ledger.Transaction] = field(default_factory=list)
    #: order id → its search terms as stored (S1): a flush writes only the terms an order gained.
    search_terms: dict[str, frozenset[str]] = field(default_factory=dict)
    #: case id → the agent handling it, as stored (S1 ``cases.assignee_id``, outside the case's JSON state): read with
    #: the case, so that a case's answer needs no statement of its own for it.
    assignees: dict[str, str | None] = field(default_factory=dict)

    def post(self, *transactions: ledger.Transaction) -> None:
        """D2: collect what a domain operation returned; :meth:`flush` writes it (the store's one ledger writer)."""
        self.postings.extend(transactions)

    # --- orders ----------------------------------------------------------------------------------------
    def get_order(self, order_id: str, *, lock: bool = False) -> Order | None:
        if order_id not in self.orders:
            self.load_orders([order_id], lock=lock)
        entry = self.orders.get(order_id)
        return entry[0] if entry else None

    def load_orders(self, order_ids: Iterable[str], *, lock: bool = False) -> None:
        """Load several orders with their cases in one query (the orders locked in id order on PostgreSQL)."""
        wanted = sorted({i for i in order_ids if i not in self.orders})
        if wanted:
            self._load(("ids", wanted), lock=lock)

    def get_order_of_case(self, case_id: str, *, lock: bool = False) -> Order | None:
        """The order of a stored case, with all its cases, in one query (None: no such case). What
        :meth:`order_for_case` then :meth:`get_order` give, one round trip instead of two or three; an order already
        in the identity map is returned as it is there."""
        found = self._load(("case", case_id), lock=lock)
        return self.orders[found[0]][0] if found and found[0] in self.orders else None

    def _load(self, which: tuple[str, Any], *, lock: bool) -> list[str]:
        """The orders ``which`` names — ``("ids", [order id, …])`` or ``("case", case id)``: the order of that case —
        with their cases (in opening order), ordered by order id. Orders already in the identity map are left as they
        are there. Returns the ids found. The statements are built once (:func:`_order_reads`) and sent through the
        driver (store/driver.py).

        One statement (orders LEFT JOIN cases: a row per case, one row for an order without any), except for a lock on
        PostgreSQL: there the orders are locked first (in id order) and their cases read by a second statement once
        the locks are held (both sent in one round trip) — a joined read would return the cases as they were when the
        statement began, before the transaction it waited for committed (READ COMMITTED re-reads only the locked
        rows). SQLite's writer lock is taken when the transaction begins (``BEGIN IMMEDIATE``), so its single
        statement sees the last commit."""
        found: dict[str, tuple[Any, int, list[Case]]] = {}
        assignee_of: dict[str, str | None] = {}
        pg = self.conn.dialect.name == "postgresql"
        how, value = which
        # One order id, a case id, or (PostgreSQL) an array of ids: one parameter, a statement built once. Several
        # ids on SQLite: an IN list, through SQLAlchemy (its size changes the statement).
        params: dict[str, Any] = {"case_id": value} if how == "case" else {"ids": value} if pg or len(value) > 1 \
            else {"id": value[0]}
        reads = _order_reads()
        if lock and pg:
            # Both statements in one round trip (a pipeline): the server runs the second once the first is done, i.e.
            # once the locks are held, so that it sees what the transactions it waited for committed.
            with driver.pipeline(self.conn, "load") as q:
                locked = q.execute(reads[f"lock_{how}"], params)
                of = q.execute(reads[f"cases_of_{how}"], params)
            for r in locked.all():
                found[r.id] = (r.state, r.version, [])
                terms_store.note_mark(self.conn, r.terms_mark)
            for cr in of.all():
                if cr.order_id in found:
                    found[cr.order_id][2].append(from_dict(Case, cr.state))
                    assignee_of[cr.id] = cr.assignee_id
        else:
            if "ids" in params and not pg:  # a statement of its own (not one built once): SQLAlchemy's path
                joined = self.conn.execute(_joined_orders(t.orders.c.id.in_(value))).all()
            else:
                joined = driver.execute(self.conn, reads[f"joined_{'case' if how == 'case' else 'ids' if pg else 'id'}"],
                                        params).all()
            for jr in joined:
                entry = found.get(jr.id)
                if entry is None:
                    entry = found[jr.id] = (jr.state, jr.version, [])
                if jr.case_state is not None:
                    entry[2].append(from_dict(Case, jr.case_state))
                    assignee_of[jr.case_id] = jr.assignee_id
        for oid, (state, version, cases) in found.items():
            if oid in self.orders:
                continue
            order: Order = from_dict(Order, state, cases=cases)
            order.version = version
            self.orders[oid] = (order, order.version, {c.id: (c.version, c.stage) for c in order.cases})
            self.refund_status[oid] = {r.key: r.status for r in order.refunds}
            self.search_terms[oid] = search.order_terms(order)
            self.assignees.update((case.id, assignee_of.get(case.id)) for case in order.cases)
        return list(found)

    def add_order(self, order: Order) -> None:
        self.orders[order.id] = (order, None, {})
        self.refund_status[order.id] = {}
        self.search_terms[order.id] = frozenset()

    def order_exists(self, order_id: str) -> bool:
        return order_exists(self.conn, order_id)

    def order_for_case(self, case_id: str) -> str | None:
        return self.conn.execute(select(t.cases.c.order_id).where(t.cases.c.id == case_id)).scalar()

    # --- groups ----------------------------------------------------------------------------------------
    def get_group(self, group_id: str, *, lock: bool = False) -> Group | None:
        if group_id in self.groups:
            return self.groups[group_id][0]
        stmt = select(t.groups.c.state, t.groups.c.version).where(t.groups.c.id == group_id)
        if lock and self.conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt).first()
        if row is None:
            return None
        group: Group = from_dict(Group, row.state)
        group.version = row.version
        self.groups[group_id] = (group, group.version)
        return group

    def add_group(self, group: Group) -> None:
        self.groups[group.id] = (group, None)

    def forget(self, order_ids: Iterable[str] = (), group_ids: Iterable[str] = ()) -> None:
        """Drop aggregates from the identity map, unwritten: after a failed step rolled back to a savepoint, their
        objects may hold half-applied changes; the next ``get_*`` reads them again from the database."""
        for oid in order_ids:
            self.orders.pop(oid, None)
            self.refund_status.pop(oid, None)
            self.search_terms.pop(oid, None)
        for gid in group_ids:
            self.groups.pop(gid, None)

    def dirty(self) -> tuple[set[str], set[str]]:
        """(order ids, group ids) of the aggregates changed since they were loaded or last written."""
        return ({oid for oid, (o, seen, _) in self.orders.items() if seen != o.version or o.pending_events},
                {gid for gid, (g, seen) in self.groups.items() if seen != g.version or g.pending_events})

    # --- writing ---------------------------------------------------------------------------------------
    def flush(self) -> list[Event]:
        """Write every changed aggregate, then all their events in one statement and the outbox hook once:
        :meth:`batch` then :meth:`Batch.write`."""
        batch = self.batch()
        batch.write(self.conn, self.now, self.on_events)
        return [e for e, _ in batch.events]

    def batch(self) -> Batch:
        """The rows of every aggregate changed since it was loaded or last written, with their events and ledger
        postings, as one :class:`Batch` — built without touching the database (the bulk import builds it on one
        thread and writes it on another); the identity map takes them as written.

        D2: the ledger postings collected by :meth:`post` and those of the orders (payments, settled refunds) go in
        together, with what P2 recovers from merchants' deposits, when the batch is written."""
        batch = Batch(postings=self.postings)
        self.postings = []
        # Groups first: orders reference them.
        for group, seen in self.groups.values():
            if seen == group.version and not group.pending_events:
                continue
            self._save_group(group, seen, batch)
            batch.events += [(e, group.merchant_id) for e in group.pending_events]
            group.pending_events.clear()
        for order, seen, case_versions in self.orders.values():
            if seen == order.version and not order.pending_events:
                continue
            self._save_order(order, seen, case_versions, batch)
            batch.events += [(e, order.merchant_id) for e in order.pending_events]
            order.pending_events.clear()
        return batch

    def _save_group(self, group: Group, seen: int | None, batch: Batch) -> None:
        row = (group.id, group.merchant_id, group.status.value, group.expires_at, group.version, encode(group))
        if seen is None:
            batch.new_groups.append(row)
            if group.status is GroupStatus.PENDING:
                batch.timers.append({"subject": "group", "subject_id": group.id, "order_id": None, "action": "expire",
                                     "stage": 0, "rule": "G4", "due_at": group.expires_at})
        else:
            batch.changed_groups.append((seen, row))
        self.groups[group.id] = (group, group.version)

    def _save_order(self, order: Order, seen: int | None, case_versions: dict[str, tuple[int, int]], batch: Batch) -> None:
        values = order_values(order)
        if seen is None:
            batch.new_orders.append((order.id, *(values[c] for c in ORDER_COLS[1:])))
            batch.postings.append(ledger.payment_transaction(order))  # D2: the money the refunds come from
        else:
            batch.changed_orders.append({"b_id": order.id, "b_seen": seen, **{f"v_{k}": v for k, v in values.items()}})
        for case in order.cases:
            old_version, old_stage = case_versions.get(case.id, (None, None))
            if old_version == case.version:
                continue
            cvalues = {"order_id": order.id, "merchant_id": case.merchant_id, "buyer_id": case.buyer_id,
                       "type": case.type.value, "reason": case.reason.value, "status": case.status.value,
                       "close_reason": case.close_reason.value if case.close_reason else None,
                       "refunded_fen": case.refunded_fen(order), "stage": case.stage,
                       "due_action": case.due_action.value if case.due_action else None, "due_at": case.due_at,
                       "opened_at": case.opened_at, "closed_at": case.closed_at, "version": case.version,
                       "first_response_at": case.first_response_at, "state": encode(case)}
            if old_version is None:
                batch.new_cases.append({"id": case.id, **cvalues})
            else:
                batch.changed_cases.append({"b_id": case.id, **{f"v_{k}": v for k, v in cvalues.items()}})
            # Timers are written when a stage starts and never rewritten: rows of an older stage stay behind and are
            # dropped as stale by whoever claims them. No unit of work ever deletes a row another worker may hold.
            if case.stage != old_stage:
                batch.timers += [{"subject": "case", "subject_id": case.id, "order_id": order.id, "action": d.action.value,
                                  "stage": d.stage, "rule": d.rule, "due_at": d.due_at} for d in case.timers()]
            case_versions[case.id] = (case.version, case.stage)
        known = self.refund_status.setdefault(order.id, {})
        for refund in order.refunds:
            rvalues = {"status": refund.status.value, "settled_at": refund.settled_at}
            if refund.key not in known:
                batch.new_refunds.append({
                    "key": refund.key, "order_id": order.id, "case_id": refund.case_id, "kind": refund.kind.value,
                    "payer": refund.payer.value, "rule": refund.rule, "amount_fen": refund.amount_fen, "refund_fen": refund.refund_fen,
                    "return_shipping_fen": refund.return_shipping_fen, "created_at": refund.created_at, **rvalues})
                if refund.status is RefundStatus.PENDING:
                    # F1 outbox: an external gateway is asked after this transaction commits, until it confirms.
                    batch.payment_jobs.append({"refund_key": refund.key, "order_id": order.id, "attempts": 0,
                                               "next_attempt_at": self.now})
            if refund.status is RefundStatus.SETTLED and known.get(refund.key) is not RefundStatus.SETTLED:
                # D2: the settlement is posted to the ledger in the same transaction, once (the key is unique).
                assert refund.settled_at is not None
                batch.postings.append(ledger.refund_transaction(order, refund, refund.settled_at))
            if refund.key in known and known[refund.key] is not refund.status:
                batch.settled_refunds.append({"b_key": refund.key, "v_status": refund.status.value, "v_settled_at": refund.settled_at})
            known[refund.key] = refund.status
        terms = search.order_terms(order)
        known_terms = self.search_terms.get(order.id, frozenset())
        if not terms <= known_terms:  # S1: a new order or case, a tracking number: findable from this commit on
            if seen is None:  # nobody else can have indexed an order this transaction creates
                batch.new_search_terms += [(order.merchant_id, term, order.id) for term in sorted(terms - known_terms)]
            else:
                batch.search_terms += search.rows(order.merchant_id, order.id, terms - known_terms)
            self.search_terms[order.id] = terms | known_terms
        self.orders[order.id] = (order, order.version, case_versions)


def insert_with_ids(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` into ``table`` and return their ids in the rows' order.

    The ids are taken first (:func:`new_ids`) so that the rows go in as a plain batch (:func:`insert_rows`: a prepared
    executemany, or COPY / the driver's executemany for many) instead of an ``INSERT … RETURNING`` with thousands of
    parameters, which costs more to build, to parse and to plan than the insert itself. Every row has the keys of
    the first, in the same order. A few rows (the usual unit of work) go in
    as one ``INSERT … RETURNING`` (:func:`insert_returning_ids`): the same ids, one round trip instead of two."""
    if conn.in_transaction():
        few = insert_returning_ids(conn, table, rows)
        if few is not None:
            return few
    ids = new_ids(conn, table, len(rows))
    if ids is None:
        return [int(i) for i in conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars().all()]
    cols = ("id", *rows[0])
    insert_rows(conn, table, cols, [(row_id, *row.values()) for row_id, row in zip(ids, rows, strict=True)])
    return ids


#: Columns of the ``orders`` row of a new order, in the order of ``(order.id, *order_values(order).values())``.
ORDER_COLS = ("id", "merchant_id", "buyer_id", "group_id", "status", "paid_fen", "refunded_fen", "paid_at", "version", "state")
GROUP_COLS = ("id", "merchant_id", "status", "expires_at", "version", "state")
SEARCH_COLS = ("merchant_id", "term", "order_id")


@dataclass
class Batch:
    """The rows of one flush (:meth:`Tracker.batch`), written with one statement per table — a prepared executemany,
    or the driver's bulk path (COPY on PostgreSQL) for many rows (:func:`~aftersales.store.bulk.insert_rows`).
    The store's one writer of aggregates: a unit of work's few rows and the bulk import's thousands alike."""

    new_groups: list[tuple[Any, ...]] = field(default_factory=list)
    #: (version loaded, row) of groups changed
    changed_groups: list[tuple[int, tuple[Any, ...]]] = field(default_factory=list)
    #: rows of ``ORDER_COLS``
    new_orders: list[tuple[Any, ...]] = field(default_factory=list)
    changed_orders: list[dict[str, Any]] = field(default_factory=list)
    new_cases: list[dict[str, Any]] = field(default_factory=list)
    changed_cases: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    new_refunds: list[dict[str, Any]] = field(default_factory=list)
    settled_refunds: list[dict[str, Any]] = field(default_factory=list)
    payment_jobs: list[dict[str, Any]] = field(default_factory=list)
    postings: list[ledger.Transaction] = field(default_factory=list)
    #: S1 terms of orders this batch creates (rows of ``SEARCH_COLS``), and of orders already stored
    new_search_terms: list[tuple[Any, ...]] = field(default_factory=list)
    search_terms: list[dict[str, Any]] = field(default_factory=list)
    #: (event, merchant id) of every aggregate written, groups' first
    events: list[tuple[Event, str]] = field(default_factory=list)

    def write(self, conn: Connection, now: datetime, on_events: EventHook | None = None) -> None:
        """Write the rows (``now``: the events' ``recorded_at``), then call ``on_events`` (the outbox hook) once.

        PostgreSQL, a unit of work's few rows: every statement in ONE round trip (store/driver.py :func:`pipeline`,
        psycopg's pipeline mode) — the optimistic version checks read from the rowcounts once it is synced, the
        events' ids from their rows, and the outbox hook's subscriber question asked in the same round trip
        (store/webhooks.py :func:`ask_any_subscriber`). The server runs the statements in order as it would one by
        one; the first that fails (a unique key: ``IntegrityError``) stops the rest and the unit of work rolls back.
        SQLite, and a batch of hundreds of rows (deadlines, the bulk import: COPY, ``UPDATE … FROM unnest``): each
        statement as it comes, as before."""
        postings = self.postings
        if postings:  # P2: reads and locks of their own, before the rows that do not depend on them
            postings = postings + ledger_store.with_recoveries(conn, postings)
        together = driver.pipelined(conn) and self._few(postings)
        checks: list[tuple[driver.Pending, int, str]] = []
        try:
            with driver.pipeline(conn, "flush") if together else nullcontext(driver.Pipeline(conn, None)) as q:
                self._send(conn, q, postings, checks)
                ids, subscriber = self._send_events(conn, q, now, on_events)
        except DBAPIError:
            _check_versions(checks, arrived_only=True)  # a stale version seen before the failure is the cause
            raise
        _check_versions(checks)
        if ids is not None and on_events is not None:
            written = [(i, e, m) for i, (e, m) in zip(ids(), self.events, strict=True)]
            if subscriber is None:
                on_events(conn, written)
            else:
                with webhooks_store.answered(conn, {m for _, m in self.events}, subscriber()):
                    on_events(conn, written)

    def _few(self, postings: list[ledger.Transaction]) -> bool:
        """Whether the batch is a unit of work's few rows (one pipeline), not a bulk batch (COPY, unnest)."""
        entries = sum(len(tx.entries) for tx in postings)
        return (max(len(self.new_groups), len(self.new_orders), len(self.changed_orders), len(self.new_cases),
                    len(self.changed_cases), len(self.timers), len(self.new_refunds), len(self.settled_refunds),
                    len(self.payment_jobs), entries, len(self.new_search_terms), len(self.search_terms)) < BULK_ROWS
                and len(postings) <= RETURNING_ROWS and len(self.events) <= RETURNING_ROWS)

    def _send(self, conn: Connection, q: driver.Pipeline, postings: list[ledger.Transaction],
              checks: list[tuple[driver.Pending, int, str]]) -> None:
        """Every row but the events, in the order of the tables' references (groups, orders, cases, …)."""
        def check(pending: driver.Pending, expected: int, what: str) -> None:
            checks.append((pending, expected, what))
            if not q.together:  # sent already: checked at once, as the statements are
                _check_versions(checks)

        _insert_rows(conn, q, t.groups, GROUP_COLS, self.new_groups)
        for seen, row in self.changed_groups:
            values = {f"v_{k}": v for k, v in zip(GROUP_COLS[1:], row[1:], strict=True)}
            check(q.execute(_GROUP_UPDATE, {"b_id": row[0], "b_seen": seen, **values}), 1, row[0])
        _insert_rows(conn, q, t.orders, ORDER_COLS, self.new_orders)
        if self.changed_orders:
            # Optimistic check: every row must still carry the version this unit of work loaded.
            ids = ",".join(r["b_id"] for r in self.changed_orders)
            if len(self.changed_orders) >= BULK_ROWS:  # a batch of deadlines: one statement (store/bulk.py)
                changed = update_rows(conn, t.orders, {"b_id": "id", "b_seen": "version"}, self.changed_orders)
                check(driver.Pending(rowcount=changed), len(self.changed_orders), ids)
            else:
                stmt = _order_update(tuple(k for k in self.changed_orders[0] if k.startswith("v_")))
                check(q.executemany(stmt, self.changed_orders), len(self.changed_orders), ids)
        q.insert(t.cases, self.new_cases)
        if len(self.changed_cases) >= BULK_ROWS:
            update_rows(conn, t.cases, {"b_id": "id"}, self.changed_cases)
        elif self.changed_cases:
            q.send(_case_update(tuple(k for k in self.changed_cases[0] if k != "b_id")), self.changed_cases)
        arm_timers(conn, self.timers, q)
        if q.together:
            q.insert(t.refunds, self.new_refunds)
        else:
            insert_dicts(conn, t.refunds, self.new_refunds)
        q.send(_REFUND_UPDATE, self.settled_refunds)
        q.insert(t.payment_jobs, self.payment_jobs)
        ledger_store.write(conn, postings, q)
        _insert_rows(conn, q, t.search_terms, SEARCH_COLS, self.new_search_terms)
        search.add(conn, self.search_terms, q)

    def _send_events(self, conn: Connection, q: driver.Pipeline, now: datetime, on_events: EventHook | None,
                     ) -> tuple[Callable[[], list[int]] | None, Callable[[], bool] | None]:
        """The events' rows: a function giving their ids (once ``q`` is synced), and the outbox hook's subscriber
        question asked in ``q`` (None: not asked)."""
        events = self.events
        if not events:
            return None, None
        rows = [dict(zip(EVENT_COLS, event_row(e, now), strict=True)) for e, _ in events]
        if not q.together:
            ids = insert_with_ids(conn, t.events, rows)
            return (lambda: ids), None
        returned = q.insert_returning(_EVENT_ID, rows)
        subscriber = webhooks_store.ask_any_subscriber(q, {m for _, m in events}) if on_events is not None else None
        return (lambda: [int(i) for i in returned()]), subscriber


def _insert_rows(conn: Connection, q: driver.Pipeline, table: Any, cols: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """``rows`` (tuples in ``cols``' order) into ``table``: in the flush's pipeline when it sends its statements
    together (one multi-row INSERT), else as they come (:func:`~aftersales.store.bulk.insert_rows`: COPY or the
    driver's executemany for many)."""
    if q.together:
        q.insert(table, [dict(zip(cols, row, strict=True)) for row in rows])
    else:
        insert_rows(conn, table, cols, rows)


def _check_versions(checks: list[tuple[driver.Pending, int, str]], *, arrived_only: bool = False) -> None:
    """The optimistic checks of a flush: each statement changed as many rows as it expected, or somebody else changed
    them since they were loaded (:class:`ConcurrentUpdate`). ``arrived_only``: only those whose result arrived (the
    pipeline failed further on)."""
    for pending, expected, what in checks:
        if arrived_only and not pending.arrived:
            continue
        if pending.rowcount != expected:
            raise ConcurrentUpdate(what)


#: Columns of an ``events`` row but its id, in the order of :func:`event_row`.
EVENT_COLS = ("order_id", "case_id", "group_id", "kind", "actor", "at", "rules", "from_status", "to_status", "data", "recorded_at")


def event_row(e: Event, now: datetime) -> tuple[Any, ...]:
    """The ``events`` row of ``e`` (``now``: its ``recorded_at``), without its id: what :meth:`Batch.write` appends
    (the bulk import's builder processes build the same rows, store/bulk.PreparedRows)."""
    return (e.order_id, e.case_id, e.group_id, e.kind, e.actor.value, e.at, list(e.rules), e.from_status, e.to_status,
            encode(e.data), now)


def _joined_orders(which: Any) -> Any:
    """Orders matching ``which`` LEFT JOIN their cases: a row per case, one row for an order without any."""
    o, c = t.orders, t.cases
    return (select(o.c.id, o.c.state, o.c.version, c.c.state.label("case_state"), c.c.id.label("case_id"), c.c.assignee_id)
            .select_from(o.outerjoin(c, c.c.order_id == o.c.id)).where(which).order_by(o.c.id, c.c.opened_at, c.c.id))


@cache
def _order_reads() -> dict[str, Any]:
    """The statements of :meth:`Tracker._load`, built once: by one id (``id``), by an array of ids (``ids``,
    PostgreSQL), by a case id (``case_id``); ``lock_*`` lock the orders (PostgreSQL), ``cases_of_*`` read their cases."""
    o, c = t.orders, t.cases
    ids = o.c.id == any_(bindparam("ids", type_=ARRAY(String)))
    of_case = o.c.id == select(c.c.order_id).where(c.c.id == bindparam("case_id")).scalar_subquery()
    # With the terms' change mark (store/terms.py): the case a locked order opens needs no statement for its terms.
    locked = select(o.c.id, o.c.state, o.c.version, terms_store.TERMS_MARK.label("terms_mark")).order_by(o.c.id)
    cases = select(c.c.order_id, c.c.state, c.c.id, c.c.assignee_id).order_by(c.c.opened_at, c.c.id)
    return {"joined_id": _joined_orders(o.c.id == bindparam("id")), "joined_ids": _joined_orders(ids),
            "joined_case": _joined_orders(of_case),
            "lock_ids": locked.where(ids).with_for_update(of=o), "lock_case": locked.where(of_case).with_for_update(of=o),
            "cases_of_ids": cases.where(c.c.order_id == any_(bindparam("ids", type_=ARRAY(String)))),
            "cases_of_case": cases.where(c.c.order_id == select(c.c.order_id).where(c.c.id == bindparam("case_id"))
                                         .scalar_subquery())}


# Statements of every unit of work, built once: SQLAlchemy then finds their compiled form without building the
# statement and its cache key again.
@cache
def _order_update(params: tuple[str, ...]) -> Any:
    """The optimistic update of orders (``b_id``, ``b_seen``) setting the columns ``v_<column>`` of ``params``."""
    return (update(t.orders).where(t.orders.c.id == bindparam("b_id"), t.orders.c.version == bindparam("b_seen"))
            .values({k[2:]: bindparam(k) for k in params}))


@cache
def _case_update(params: tuple[str, ...]) -> Any:
    return update(t.cases).where(t.cases.c.id == bindparam("b_id")).values({k[2:]: bindparam(k) for k in params})


_GROUP_UPDATE = (update(t.groups).where(t.groups.c.id == bindparam("b_id"), t.groups.c.version == bindparam("b_seen"))
                 .values({c: bindparam(f"v_{c}") for c in GROUP_COLS[1:]}))
_EVENT_ID = insert(t.events).returning(t.events.c.id)
_REFUND_UPDATE = (update(t.refunds).where(t.refunds.c.key == bindparam("b_key"))
                  .values(status=bindparam("v_status"), settled_at=bindparam("v_settled_at")))
_CATEGORIES = select(t.categories)
_MERCHANT = select(t.merchants).where(t.merchants.c.id == bindparam("merchant_id"))
_MERCHANT_MARKED = select(t.merchants, terms_store.TERMS_MARK.label("terms_mark")).where(t.merchants.c.id == bindparam("merchant_id"))
_ORDER_EXISTS = select(t.orders.c.id).where(t.orders.c.id == bindparam("order_id"))


# --- read-side queries ------------------------------------------------------------------------------------
def categories(conn: Connection) -> dict[str, Category]:
    """Every category (PostgreSQL: from this process's copy while the terms' change mark is the copy's, store/terms.py)."""
    rows = terms_store.category_rows(conn, _CATEGORIES)
    return {
        r.code: Category(r.code, r.name, r.no_reason_return,
                         StatutoryExclusion(r.statutory_exclusion) if r.statutory_exclusion else None,
                         r.after_sales_days, r.warranty_days)
        for r in rows
    }


def merchant(conn: Connection, merchant_id: str) -> Any:
    """The merchant's row (attributes by column), None if unknown. PostgreSQL: read with the terms' change mark, which
    a new order's terms then need no statement for while this process's copy is current (store/terms.py)."""
    if not terms_store.keeps_copy(conn):
        return driver.execute(conn, _MERCHANT, {"merchant_id": merchant_id}).first()
    return _marked_merchant(conn, driver.execute(conn, _MERCHANT_MARKED, {"merchant_id": merchant_id}).first())


def order_exists(conn: Connection, order_id: str) -> bool:
    """Whether an order ``order_id`` is stored."""
    return driver.execute(conn, _ORDER_EXISTS, {"order_id": order_id}).first() is not None


def merchant_and_order_taken(conn: Connection, merchant_id: str, order_id: str) -> tuple[Any, bool]:
    """:func:`merchant`, and whether an order ``order_id`` is stored already (a new order's two checks): in one
    round trip on PostgreSQL (a pipeline, the BEGIN with them)."""
    if not terms_store.keeps_copy(conn):
        return merchant(conn, merchant_id), order_exists(conn, order_id)
    with driver.pipeline(conn, "merchant") as q:
        found = q.execute(_MERCHANT_MARKED, {"merchant_id": merchant_id})
        taken = q.execute(_ORDER_EXISTS, {"order_id": order_id})
    rows = found.all()
    return _marked_merchant(conn, rows[0] if rows else None), bool(taken.all())


def _marked_merchant(conn: Connection, row: Any) -> Any:
    """A row of :data:`_MERCHANT_MARKED` as :data:`_MERCHANT`'s, its mark noted (None for None)."""
    if row is None:
        return None
    terms_store.note_mark(conn, row[-1])
    return _merchant_row()._make(row[:-1])


@cache
def _merchant_row() -> Any:
    """The class of the rows :data:`_MERCHANT` gives (a merchant's columns, without the mark)."""
    return driver.row_class([c.key for c in t.merchants.c])


def case_rows(conn: Connection, *, where: Iterable[Any], after: str | None, limit: int) -> list[Any]:
    stmt = select(t.cases.c.id, t.cases.c.order_id, t.cases.c.refunded_fen, t.cases.c.assignee_id).where(*where)
    if after is not None:
        stmt = stmt.where(t.cases.c.id > after)
    return list(conn.execute(stmt.order_by(t.cases.c.id).limit(limit + 1)).all())


def case_rows_by_deadline(conn: Connection, *, where: Iterable[Any], after: tuple[datetime | None, str] | None,
                          limit: int) -> list[Any]:
    """Keyset page ordered by (due_at NULLS FIRST, id): cases without a pending automatic action lead the queue."""
    c = t.cases.c
    stmt = select(c.id, c.order_id, c.refunded_fen, c.due_at, c.assignee_id).where(*where)
    if after is not None:
        due, cid = after
        if due is None:
            stmt = stmt.where(or_(c.due_at.is_not(None), (c.due_at.is_(None) & (c.id > cid))))
        else:
            stmt = stmt.where(c.due_at.is_not(None), or_(c.due_at > due, (c.due_at == due) & (c.id > cid)))
    return list(conn.execute(stmt.order_by(c.due_at.asc().nulls_first(), c.id).limit(limit + 1)).all())


def case_counts_by_status(conn: Connection, *, where: Iterable[Any]) -> dict[str, int]:
    """Number of cases per status among those matching ``where`` (the workbench queue's counts, S1)."""
    stmt = select(t.cases.c.status, func.count()).where(*where).group_by(t.cases.c.status)
    return {status: int(n) for status, n in conn.execute(stmt).all()}


def buyer_order_ids(conn: Connection, buyer_id: str, *, limit: int) -> list[str]:
    """Ids of a buyer's orders, most recently paid first (the buyer portal's order list)."""
    o = t.orders.c
    stmt = select(o.id).where(o.buyer_id == buyer_id).order_by(o.paid_at.desc(), o.id.desc()).limit(limit)
    return [row.id for row in conn.execute(stmt).all()]


def case_events(conn: Connection, case_id: str, *, after: int | None, limit: int,
                exclude_kinds: Iterable[str] = ()) -> list[Any]:
    stmt = select(t.events).where(t.events.c.case_id == case_id)
    if hidden := list(exclude_kinds):
        stmt = stmt.where(t.events.c.kind.not_in(hidden))
    if after is not None:
        stmt = stmt.where(t.events.c.id > after)
    return list(conn.execute(stmt.order_by(t.events.c.id).limit(limit + 1)).all())


def order_events(conn: Connection, order_id: str) -> list[Any]:
    return list(conn.execute(select(t.events).where(t.events.c.order_id == order_id).order_by(t.events.c.id)).all())


def _due(conn: Connection, now: datetime, *where: Any, limit: int | None, skip_locked: bool) -> list[Any]:
    """Due timers matching ``where``, earliest first, each with its case's current stage (None for other subjects).

    F2: rows waiting for their next try (``next_try_at`` later) and parked rows (``stuck_at``) are not due.
    On PostgreSQL rows another worker holds are skipped (SKIP LOCKED)."""
    c = t.timers.c
    stmt = (select(t.timers, t.cases.c.stage.label("case_stage"))
            .outerjoin(t.cases, (c.subject == "case") & (t.cases.c.id == c.subject_id))
            .where(c.due_at <= now, c.stuck_at.is_(None), or_(c.next_try_at.is_(None), c.next_try_at <= now), *where)
            .order_by(c.due_at, c.id).limit(limit))
    if skip_locked and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=t.timers, skip_locked=True)
    return list(conn.execute(stmt).all())


def due_timers(conn: Connection, now: datetime, limit: int, *, skip_locked: bool) -> list[Any]:
    """The ``limit`` earliest due timers."""
    return _due(conn, now, limit=limit, skip_locked=skip_locked)


def due_case_timers(conn: Connection, now: datetime, case_ids: Iterable[str], exclude: Iterable[int], *,
                    skip_locked: bool) -> list[Any]:
    """Every other due timer of these cases, to be applied with them (rows another worker holds stay with it)."""
    wanted = sorted(set(case_ids))
    if not wanted:
        return []
    return _due(conn, now, t.timers.c.subject == "case", one_of(conn, t.timers.c.subject_id, wanted),
                ~one_of(conn, t.timers.c.id, sorted(set(exclude))), limit=None, skip_locked=skip_locked)


def delete_timers(conn: Connection, ids: list[int]) -> None:
    conn.execute(delete(t.timers).where(one_of(conn, t.timers.c.id, ids)))


def count_due(conn: Connection, now: datetime) -> int:
    return int(conn.execute(select(func.count()).select_from(t.timers).where(t.timers.c.due_at <= now)).scalar_one())


def kv_get(conn: Connection, key: str) -> str | None:
    return conn.execute(select(t.kv.c.value).where(t.kv.c.key == key)).scalar()


def kv_set(conn: Connection, key: str, value: str) -> None:
    if conn.execute(update(t.kv).where(t.kv.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(insert(t.kv).values(key=key, value=value))


__all__ = ["ConcurrentUpdate", "Tracker", "new_ids", "or_"]
