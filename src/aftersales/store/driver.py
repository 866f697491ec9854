"""The hot path's statements straight through the driver (issue 13: the request path's CPU).

A unit of work of the B1 cycle sends ten or so small statements. Through ``Connection.execute`` each one pays
SQLAlchemy's per-execution machinery — the statement's cache key, the compiled-cache lookup, an execution context,
parameter construction, a result object and its row processors — which profiling showed to be a third to a half of
the server's CPU per request, several times the driver's own work (docs/perf/request/). Here a statement built once
(a module-level constant of the store) is compiled **once per dialect and set of parameter names**, and then each
execution is the driver's ``cursor.execute`` / ``executemany`` with the parameters processed exactly as SQLAlchemy
would process them (the compiled statement's own bind processors: JSON through the engine's serializer, instants in
UTC, …) and the result rows through the columns' own result processors — the same SQL, the same values, the same
rows (tests/integration/test_driver_statements.py compares both ways on both databases).

What this path does not do, :func:`execute` leaves to ``Connection.execute``: statements whose compiled form
depends on the values (expanding ``IN``, literal execution) or that need Python-side column defaults. The
engine's ``before_cursor_execute`` listeners are still called (the statement budget test counts through them);
driver errors are raised as SQLAlchemy's (``DBAPIError`` and its kinds), as the retry logic expects.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Connection, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

try:
    from psycopg.pq import TransactionStatus

    _IDLE: Any = TransactionStatus.IDLE
except ImportError:  # SQLite only
    _IDLE = None


def cursor(conn: Connection) -> Any:
    """A cursor of the driver's connection under ``conn`` (same transaction)."""
    raw: Any = conn.connection.driver_connection
    return raw.cursor()


@contextmanager
def driver_errors(conn: Connection, what: str) -> Iterator[None]:
    """The driver's errors as SQLAlchemy raises them (``DBAPIError`` and its kinds), so that a conflict met by a
    statement sent straight through the driver is retried like any other (service/context.py ``_retryable``)."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        raise DBAPIError.instance(what, None, exc, dbapi.Error, hide_parameters=True, dialect=conn.dialect) from exc


@dataclass(frozen=True, slots=True)
class Plan:
    """A statement compiled for one dialect and one set of parameter names, ready for the driver."""

    sql: str
    #: Positional dialects (SQLite): the bind names in the order of the placeholders; None: named (psycopg).
    order: tuple[str, ...] | None
    #: Every bind of the statement with its value when not given (a ``limit``, a literal) — ``construct_params``.
    defaults: Mapping[str, Any]
    #: (bind name, processor) of the binds that have one.
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]
    #: The result rows' class (column keys) and the processors of the columns that have one; None: no rows.
    row: Any
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    #: Positional dialects: (bind name, processor or None) in the order of the placeholders.
    positions: tuple[tuple[str, Callable[[Any], Any] | None], ...]

    def params(self, given: Mapping[str, Any]) -> Any:
        if self.defaults:
            given = {**self.defaults, **given}
        if self.order is None:
            values = dict(given)
            for name, proc in self.binds:
                values[name] = proc(values[name])
            return values
        return tuple([given[name] if proc is None else proc(given[name]) for name, proc in self.positions])

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[Any]:
        make = self.row._make
        if not self.results:
            return [make(r) for r in raw]
        out = []
        for r in raw:
            values = list(r)
            for i, proc in self.results:
                values[i] = proc(values[i])
            out.append(make(values))
        return out


_PLANS: dict[tuple[Any, int, tuple[str, ...]], Plan | None] = {}


#: More plans than this means statements built per call were given (a caller's mistake): start again rather than grow.
MAX_PLANS = 2_000


def plan(dialect: Dialect, stmt: Any, keys: tuple[str, ...]) -> Plan | None:
    """The plan of ``stmt`` with parameters named ``keys`` for ``dialect`` (None: leave it to SQLAlchemy).
    ``stmt`` must be built once (a constant of the store): its plan is kept for the life of the process."""
    key = (dialect, id(stmt), keys)
    try:
        return _PLANS[key]
    except KeyError:
        pass
    made = _make_plan(dialect, stmt, keys)
    if len(_PLANS) >= MAX_PLANS:
        _PLANS.clear()
        _KEEP.clear()
    _PLANS[key] = made
    _KEEP.append(stmt)  # the id stays this statement's: plans are for statements that live as long as the process
    return made


_KEEP: list[Any] = []


def _make_plan(dialect: Dialect, stmt: Any, keys: tuple[str, ...]) -> Plan | None:
    compiled: Any = stmt.compile(dialect=dialect, column_keys=list(keys))
    if (compiled.literal_execute_params or compiled.post_compile_params or compiled.escaped_bind_names
            or getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None)):
        return None
    processors = compiled._bind_processors
    defaults = {k: v for k, v in compiled.construct_params(_check=False).items() if k not in keys}
    order = tuple(compiled.positiontup) if dialect.positional else None
    names = order if order is not None else tuple(compiled.binds)
    binds = tuple((name, processors[name]) for name in dict.fromkeys(names) if name in processors)
    row: Any = None
    results: list[tuple[int, Callable[[Any], Any]]] = []
    if compiled._result_columns:
        cols = compiled._result_columns
        row = row_class([c.keyname for c in cols])
        for i, col in enumerate(cols):
            proc = col.type._cached_result_processor(dialect, None)
            if proc is not None:
                results.append((i, proc))
    positions = tuple((name, processors.get(name)) for name in order or ())
    return Plan(compiled.string, order, defaults, binds, row, tuple(results), positions)


def row_class(fields: list[str]) -> Any:
    """A row class with attribute access by column key (fields known at run time)."""
    make: Any = namedtuple
    return make("Row", fields, rename=True)


class Result:
    """What :func:`execute` gives: the rows (processed, with attribute access) and the rowcount."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalars(self) -> list[Any]:
        return [r[0] for r in self._rows]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


def _notify(conn: Connection, cur: Any, sql: str, params: Any, many: bool) -> None:
    """The engine's ``before_cursor_execute`` listeners, as ``Connection.execute`` would call them."""
    for listener in conn.dispatch.before_cursor_execute:
        listener(conn, cur, sql, params, None, many)


def execute_sql(conn: Connection, sql: str) -> None:
    """A statement without parameters or rows (``BEGIN IMMEDIATE``) sent as ``conn.exec_driver_sql(sql)`` sends it."""
    cur = cursor(conn)
    if conn.dispatch.before_cursor_execute:
        _notify(conn, cur, sql, (), False)
    with driver_errors(conn, sql):
        cur.execute(sql)


def execute(conn: Connection, stmt: Any, params: Mapping[str, Any] | None = None) -> Any:
    """``conn.execute(stmt, params)`` through the driver (:class:`Result`); SQLAlchemy's own for what
    :func:`plan` leaves to it (a ``CursorResult``: the same methods)."""
    given = params or {}
    p = plan(conn.dialect, stmt, tuple(given))
    if p is None:
        return conn.execute(stmt, dict(given))
    driver_conn: Any = conn.connection.driver_connection
    if _begins_transaction(conn, driver_conn):  # PostgreSQL: BEGIN and this statement in one round trip
        with pipeline(conn, p.sql) as q:
            sent = q.execute(stmt, given)
        return Result(sent.all(), sent.rowcount)
    cur = driver_conn.cursor()
    values = p.params(given)
    if conn.dispatch.before_cursor_execute:
        _notify(conn, cur, p.sql, values, False)
    with driver_errors(conn, p.sql):
        cur.execute(p.sql, values)
        raw = cur.fetchall() if p.row is not None else []
    return Result(p.rows(raw) if raw else [], cur.rowcount)


def executemany(conn: Connection, stmt: Any, rows: Sequence[Mapping[str, Any]]) -> int:
    """``conn.execute(stmt, rows)`` (an executemany, every row with the keys of the first) through the driver; the
    number of rows it changed. psycopg sends the rows in one pipeline: one round trip."""
    if not rows:
        return 0
    p = plan(conn.dialect, stmt, tuple(rows[0]))
    if p is None:
        return int(conn.execute(stmt, [dict(r) for r in rows]).rowcount)
    if len(rows) == 1:
        return int(execute(conn, stmt, rows[0]).rowcount)
    cur = cursor(conn)
    values = [p.params(r) for r in rows]
    if conn.dispatch.before_cursor_execute:
        _notify(conn, cur, p.sql, values, True)
    with driver_errors(conn, p.sql):
        cur.executemany(p.sql, values)
    return int(cur.rowcount)


def insert_returning(conn: Connection, stmt: Any, rows: Sequence[Mapping[str, Any]]) -> list[Any] | None:
    """Insert ``rows`` with ``stmt`` (an ``INSERT … RETURNING`` of one column) in one round trip and return that
    column of each row, in the rows' order; None when :func:`plan` leaves the statement to SQLAlchemy.

    PostgreSQL: the driver's executemany with ``returning`` (one pipeline; each row's own result, in order).
    SQLite: one multi-row ``INSERT … VALUES (…), (…) … RETURNING``, whose rows take the next rowids in the order of
    its VALUES (under the writer lock ``BEGIN IMMEDIATE`` holds): the ids sorted are the rows' in order."""
    p = plan(conn.dialect, stmt, tuple(rows[0]))
    if p is None:
        return None
    cur = cursor(conn)
    if len(rows) == 1 or conn.dialect.name == "postgresql":
        values = [p.params(r) for r in rows]
        if conn.dispatch.before_cursor_execute:
            _notify(conn, cur, p.sql, values if len(values) > 1 else values[0], len(values) > 1)
        with driver_errors(conn, p.sql):
            if len(values) == 1:
                cur.execute(p.sql, values[0])
                return [p.rows(cur.fetchall())[0][0]]
            cur.executemany(p.sql, values, returning=True)
            out = []
            while True:
                out.append(p.rows(cur.fetchall())[0][0])
                if not cur.nextset():
                    break
            return out
    sql = _multi_values(p.sql, len(rows))
    flat = tuple(v for r in rows for v in p.params(r))
    if conn.dispatch.before_cursor_execute:
        _notify(conn, cur, sql, flat, False)
    with driver_errors(conn, sql):
        cur.execute(sql, flat)
        return sorted(r[0] for r in p.rows(cur.fetchall()))


_MULTI: dict[tuple[str, int], str] = {}


def _multi_values(sql: str, n: int) -> str:
    """A one-row ``INSERT … VALUES (?, …) RETURNING …`` (SQLite's placeholders) made an ``n``-row one."""
    key = (sql, n)
    out = _MULTI.get(key)
    if out is None:
        head, sep, rest = sql.partition(" VALUES (")
        group, close, tail = rest.partition(")")
        if not sep or not close or set(group.replace(" ", "")) - {"?", ","}:
            raise ValueError(f"not a one-row INSERT with positional placeholders: {sql}")
        out = _MULTI[key] = f"{head} VALUES " + ", ".join([f"({group})"] * n) + tail
    return out


# --- PostgreSQL: several statements in one round trip (issue 13, "one round trip per step") ----------------------
class Pending:
    """A statement sent by a :class:`Pipeline`: its rowcount and rows once the pipeline has been synced (at once on
    a connection that sends each statement as it comes)."""

    __slots__ = ("_cur", "_plan", "_result", "_rowcount")

    def __init__(self, cur: Any = None, p: Plan | None = None, result: Any = None, rowcount: int | None = None) -> None:
        self._cur, self._plan, self._result, self._rowcount = cur, p, result, rowcount

    @property
    def arrived(self) -> bool:
        """Whether the statement's result has arrived (a pipeline that failed before it: not)."""
        return self._cur is None or self._cur.statusmessage is not None

    @property
    def rowcount(self) -> int:
        """Rows the statement changed (an executemany: all of its rows')."""
        if self._rowcount is not None:
            return self._rowcount
        if self._result is not None:
            return int(self._result.rowcount)
        return int(self._cur.rowcount) if self._cur is not None else 0

    def all(self) -> list[Any]:
        """The rows (processed as :func:`execute` processes them)."""
        if self._result is not None:
            return list(self._result.all())
        if self._cur is None or self._plan is None or self._plan.row is None:
            return []
        return self._plan.rows(self._cur.fetchall())


class Pipeline:
    """Statements sent together (:func:`pipeline`): each method queues one and gives its :class:`Pending` result,
    readable once the ``with`` block has ended. Statements whose plan :func:`plan` leaves to SQLAlchemy cannot be
    pipelined: :func:`pipeline` is only for statements built once."""

    def __init__(self, conn: Connection, raw: Any) -> None:
        self.conn, self.raw = conn, raw
        #: Whether the statements go together (PostgreSQL), their results read after the block; False: each is sent
        #: as it comes (SQLite, or a batch too big for a pipeline), its result there at once.
        self.together = raw is not None
        self._shared: Any = None

    def _plan(self, stmt: Any, keys: tuple[str, ...]) -> Plan:
        p = plan(self.conn.dialect, stmt, keys)
        if p is None:
            raise ValueError(f"a statement SQLAlchemy must send cannot be pipelined: {stmt}")
        return p

    def execute(self, stmt: Any, params: Mapping[str, Any] | None = None) -> Pending:
        """:func:`execute`, its result read after the sync."""
        if self.raw is None:
            return Pending(result=execute(self.conn, stmt, params))
        given = params or {}
        p = self._plan(stmt, tuple(given))
        cur = self.raw.cursor()
        values = p.params(given)
        if self.conn.dispatch.before_cursor_execute:
            _notify(self.conn, cur, p.sql, values, False)
        cur.execute(p.sql, values)
        return Pending(cur, p)

    def executemany(self, stmt: Any, rows: Sequence[Mapping[str, Any]]) -> Pending:
        """:func:`executemany` (every row with the keys of the first); nothing for no rows."""
        if not rows:
            return Pending(rowcount=0)
        if self.raw is None:
            return Pending(rowcount=executemany(self.conn, stmt, rows))
        if len(rows) == 1:
            return self.execute(stmt, rows[0])
        p = self._plan(stmt, tuple(rows[0]))
        cur = self.raw.cursor()
        values = [p.params(r) for r in rows]
        if self.conn.dispatch.before_cursor_execute:
            _notify(self.conn, cur, p.sql, values, True)
        cur.executemany(p.sql, values)
        return Pending(cur, p)

    def send(self, stmt: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """:meth:`executemany` of rows whose result nobody reads (an insert): on one cursor shared by every such
        statement of the pipeline (its errors are raised all the same)."""
        if not rows:
            return
        if self.raw is None:
            executemany(self.conn, stmt, rows)
            return
        p = self._plan(stmt, tuple(rows[0]))
        if self._shared is None:
            self._shared = self.raw.cursor()
        cur = self._shared
        values = [p.params(r) for r in rows]
        many = len(values) > 1
        if self.conn.dispatch.before_cursor_execute:
            _notify(self.conn, cur, p.sql, values if many else values[0], many)
        if many:
            cur.executemany(p.sql, values)
        else:
            cur.execute(p.sql, values[0])

    def insert(self, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (every row with the keys of the first) into ``table``: on PostgreSQL in ONE statement,
        ``INSERT … VALUES (…), (…)`` (:func:`rows_insert`; one execution on the server instead of one per row of an
        executemany), the rows taking the table's next ids in the order of its VALUES as they would one by one;
        as it comes elsewhere (:meth:`send` of ``INSERT INTO table``)."""
        if len(rows) < 2 or not self.together:
            from .bulk import insert_of  # the store's one ``INSERT INTO table`` (bulk imports this module)

            self.send(insert_of(table), rows)
            return
        self.send(rows_insert(table, tuple(rows[0]), len(rows)), [numbered(rows)])

    def insert_returning(self, stmt: Any, rows: Sequence[Mapping[str, Any]]) -> Callable[[], list[Any]]:
        """:func:`insert_returning` (an ``INSERT … RETURNING`` of one column of ``stmt.table``): a function giving that
        column of each row, in the rows' order, once synced. PostgreSQL: one statement for all the rows (an
        executemany returning rows would wait for them in the middle of the pipeline)."""
        if self.raw is None:
            ids = insert_returning(self.conn, stmt, rows)
            if ids is None:
                raise ValueError(f"a statement SQLAlchemy must send cannot be pipelined: {stmt}")
            return lambda: list(ids)
        if len(rows) == 1:
            one = self.execute(stmt, rows[0])
            return lambda: [one.all()[0][0]]
        # Several rows: one multi-row INSERT. Its rows take the column's sequence values in the order of its VALUES
        # (one statement, each row's default evaluated in turn; other transactions' values may fall between them,
        # never out of order): the ids sorted are the rows', in order — as SQLite's multi-row insert (above).
        table = stmt.table
        returned = self.execute(rows_insert(table, tuple(rows[0]), len(rows), stmt._returning[0].key), numbered(rows))
        return lambda: sorted(r[0] for r in returned.all())


def numbered(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The parameters of :func:`rows_insert` for ``rows``: ``<key>__<row number>``."""
    return {f"{k}__{i}": v for i, row in enumerate(rows) for k, v in row.items()}


@cache
def rows_insert(table: Any, keys: tuple[str, ...], n: int, returning: str | None = None) -> Any:
    """``INSERT INTO table (keys) VALUES (…), … `` of ``n`` rows, its parameters :func:`numbered` (each with its
    column's type: the same bind processing as one row's), ``RETURNING`` the column ``returning``; built once."""
    stmt = insert(table).values([{k: bindparam(f"{k}__{i}", type_=table.c[k].type) for k in keys} for i in range(n)])
    return stmt.returning(table.c[returning]) if returning else stmt


def pipelined(conn: Connection) -> bool:
    """Whether :func:`pipeline` sends its statements together on ``conn`` (PostgreSQL through psycopg 3)."""
    return conn.dialect.name == "postgresql" and hasattr(conn.connection.driver_connection, "pipeline")


@contextmanager
def pipeline(conn: Connection, what: str = "pipeline") -> Iterator[Pipeline]:
    """Statements sent in ONE round trip: psycopg 3's pipeline mode on PostgreSQL — every statement queued by the
    block is sent, then one Sync, then every result read back — and sent one by one on SQLite (no network).

    The server runs them in order, in the caller's transaction, as if sent one at a time; the first one that fails
    makes the server skip the rest, and its error is raised when the block ends, as SQLAlchemy's kind
    (:func:`driver_errors`: an ``IntegrityError`` stays one, a deadlock is retried). The results (:class:`Pending`)
    are read after the block."""
    if not pipelined(conn):
        yield Pipeline(conn, None)
        return
    raw: Any = conn.connection.driver_connection
    begin = raw._get_tx_start_command() if _begins_transaction(conn, raw) else None
    with driver_errors(conn, what):
        if begin is not None:
            raw.autocommit = True
        try:
            with raw.pipeline():
                if begin is not None:
                    raw.cursor().execute(begin)
                yield Pipeline(conn, raw)
        finally:
            if begin is not None:
                raw._autocommit = False


def _begins_transaction(conn: Connection, raw: Any) -> bool:
    """Whether the next statement on ``raw`` (psycopg 3, not in autocommit nor in a pipeline) starts its transaction.

    psycopg sends ``BEGIN`` before it and waits for the answer — even in pipeline mode — a round trip of its own.
    :func:`pipeline` sends that BEGIN itself, first in the pipeline: the connection is put in autocommit for the
    pipeline (no round trip: it is idle) so that psycopg sends nothing of its own, and back out of autocommit once the
    transaction is open (its private flag: the public setter refuses inside a transaction). The transaction is then
    psycopg's as if it had begun it (its isolation level, read only, deferrable: psycopg's own BEGIN statement);
    commit and rollback send COMMIT and ROLLBACK as usual."""
    return (conn.dialect.name == "postgresql" and getattr(raw, "_pipeline", True) is None and not raw.autocommit
            and raw.pgconn.transaction_status == _IDLE and hasattr(raw, "_get_tx_start_command"))
