"""Writing many rows at once, straight through the driver, in the caller's transaction: ``COPY … FROM STDIN`` on
PostgreSQL, ``executemany`` on SQLite. Used by the store's one batch writer
(:meth:`aftersales.store.repositories.Batch.write`) and the ledger's (:func:`aftersales.store.ledger.write`), for a unit
of work's few rows and the bulk import's thousands alike."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

from sqlalchemy import JSON, Connection, Table, func, insert, select

from . import tables as t
from .driver import cursor, driver_errors, executemany, insert_returning

#: Below this many rows a table's rows go in through SQLAlchemy (one prepared executemany), from it on through the
#: driver's bulk path: COPY costs a round trip of its own, which a handful of rows does not repay. A batch of due
#: deadlines (hundreds of events, ledger transactions and entries) is over it: SQLAlchemy's per-row parameter
#: processing and PostgreSQL's per-row execution of an executemany cost more than the COPY (docs/perf/deadlines).
BULK_ROWS = 100
#: Up to this many rows an insert that needs its ids back is one ``INSERT … RETURNING`` (:func:`insert_returning_ids`);
#: above it the ids are taken first (:func:`new_ids`) and the rows go in as a plain executemany.
RETURNING_ROWS = 64
#: SQLite's page cache for the importing connection, in KiB (the default is 2 MiB).
SQLITE_CACHE_KIB = 256 * 1024


def new_ids(conn: Connection, table: Any, n: int) -> list[int] | None:
    """``n`` ids for new rows of ``table`` (an integer ``id`` key), ascending, as the database would give them in
    this order; None where the database must assign them itself.

    PostgreSQL: from the column's own sequence. SQLite: the rows' rowids would be max(id) + 1, + 2, …, and a writing
    transaction holds the database's write lock (``BEGIN IMMEDIATE``, db.py), so nobody else can take them."""
    if conn.dialect.name == "postgresql":
        # One round trip: the sequence is looked up (in this connection's search_path) by the same statement.
        seq = func.pg_get_serial_sequence(table.name, "id")
        return sorted(conn.execute(select(func.nextval(seq)).select_from(func.generate_series(1, n))).scalars().all())
    if conn.dialect.name == "sqlite" and conn.in_transaction():
        last = conn.execute(select(func.max(table.c.id))).scalar()
        return list(range((last or 0) + 1, (last or 0) + n + 1))
    return None


def insert_returning_ids(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> list[int] | None:
    """Insert a few ``rows`` (at most :data:`RETURNING_ROWS`) into ``table`` in ONE statement that returns the ids the
    database gave them, in the rows' order; None (nothing inserted) for more rows: take them with :func:`new_ids`.

    The ids are those the database's own numbering gives (PostgreSQL: the column's sequence; SQLite: the next rowids,
    under the writer lock ``BEGIN IMMEDIATE`` holds), as :func:`new_ids` would have taken them — one round trip fewer."""
    if not rows or len(rows) > RETURNING_ROWS:
        return None
    through_driver = insert_returning(conn, _insert_returning_id(table), rows)
    if through_driver is not None:
        return [int(i) for i in through_driver]
    if len(rows) == 1:
        return [int(conn.execute(insert(table).returning(table.c.id), rows[0]).scalar_one())]
    if conn.dialect.name == "sqlite":
        # One multi-row INSERT: its rows take the next rowids in the order of its VALUES (what new_ids counts on),
        # and SQLAlchemy would otherwise send an ordered RETURNING one row at a time.
        return sorted(int(i) for i in conn.execute(insert(table).values(rows).returning(table.c.id)).scalars().all())
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)  # PostgreSQL: one INSERT … SELECT
    return [int(i) for i in conn.execute(stmt, rows).scalars().all()]


@cache
def insert_of(table: Table) -> Any:
    """``INSERT INTO table``, built once (the driver's statements are compiled once per statement object)."""
    return insert(table)


@cache
def _insert_returning_id(table: Table) -> Any:
    return insert(table).returning(table.c.id)


def copy_rows(cur: Any, pg: bool, table: str, cols: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Append ``rows`` (tuples in driver form, in ``cols`` order) to ``table``: COPY on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    if pg:
        with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"  # noqa: S608 - our own names
        cur.executemany(sql, rows)


def insert_rows(conn: Connection, table: Table, cols: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Append ``rows`` (Python values in ``cols`` order) to ``table``: a few through SQLAlchemy, many through the
    driver's bulk path (COPY on PostgreSQL, the driver's executemany on SQLite) with the columns' own bind processing
    (SQLite: UTC instants as text; both: JSON as the engine's serializer writes it) — the same rows either way
    (tests/integration/test_bulk_rows.py)."""
    if not rows:
        return
    if len(rows) < BULK_ROWS:
        executemany(conn, insert_of(table), [dict(zip(cols, row, strict=True)) for row in rows])
        return
    pg = conn.dialect.name == "postgresql"
    procs = _bind_processors(conn.dialect, table, tuple(cols))
    if procs:
        rows = [_processed(row, procs) for row in rows]
    with driver_errors(conn, f"COPY {table.name}"):
        copy_rows(cursor(conn), pg, table.name, cols, rows)


@cache
def _bind_processors(dialect: Any, table: Table, cols: tuple[str, ...]) -> list[tuple[int, Any]]:
    """(position, processor) of the columns of ``cols`` that have one (instants: aware ones only, in UTC; JSON: the
    engine's serializer), as an executemany through SQLAlchemy would apply them. On PostgreSQL the JSON serializer's
    bytes are given to COPY as text (bytes would be written as ``bytea``)."""
    out: list[tuple[int, Any]] = []
    for i, name in enumerate(cols):
        col_type = table.c[name].type
        proc = col_type.bind_processor(dialect)
        if proc is None:
            continue
        if dialect.name == "postgresql" and isinstance(col_type, JSON):
            proc = _as_text(proc)
        out.append((i, proc))
    return out


def _as_text(proc: Any) -> Any:
    def text(value: Any) -> Any:
        out = proc(value)
        return out.decode() if isinstance(out, bytes) else out
    return text


def insert_dicts(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """:func:`insert_rows` for rows given as dicts, each with the keys of the first in the same order."""
    if rows:
        insert_rows(conn, table, tuple(rows[0]), [tuple(r.values()) for r in rows])


def update_rows(conn: Connection, table: Table, match: dict[str, str], rows: Sequence[dict[str, Any]]) -> int:
    """Update many rows of ``table`` in ONE statement; returns how many rows it changed (the caller's optimistic
    check compares it with ``len(rows)``). Each row's keys are those of the first, in the same order: the keys of
    ``match`` (key → column) select the row (equality), every ``v_<column>`` key is a new value.

    PostgreSQL: ``UPDATE … FROM unnest(<one array per column>)`` — one statement executed once, instead of an
    executemany that the server executes once per row; the arrays are sent in binary form (``%b``: psycopg writes the
    text form of an array in Python, escaping every character — 0.7 ms for one aggregate's JSON state, against 4 µs).
    SQLite: the driver's executemany of the compiled statement.
    Values go through the columns' bind processing as SQLAlchemy's would (tests/integration/test_bulk_rows.py)."""
    if not rows:
        return 0
    keys = tuple(rows[0])
    sql, cols = _update_sql(conn.dialect, table, keys, tuple(sorted(match.items())))
    procs = _bind_processors(conn.dialect, table, cols)
    values = [_processed(tuple(r.values()), procs) for r in rows] if procs else [tuple(r.values()) for r in rows]
    cur = cursor(conn)
    with driver_errors(conn, sql):
        if conn.dialect.name == "postgresql":
            cur.execute(sql, [list(col) for col in zip(*values, strict=True)])
            return int(cur.rowcount)
        order = [keys.index(k) for k in keys if k.startswith("v_")] + [keys.index(k) for k in keys if k in match]
        cur.executemany(sql, [tuple(v[i] for i in order) for v in values])
        return int(cur.rowcount)


@cache
def _update_sql(dialect: Any, table: Table, keys: tuple[str, ...], match: tuple[tuple[str, str], ...]) -> tuple[str, tuple[str, ...]]:
    """The statement of :func:`update_rows` and the column of each key (for its bind processing)."""
    by_key = dict(match)
    cols = tuple(by_key[k] if k in by_key else k.removeprefix("v_") for k in keys)
    for k in keys:
        if k not in by_key and not k.startswith("v_"):
            raise ValueError(f"update_rows: {k!r} is neither a match key nor v_<column>")
    sets = [(k, c) for k, c in zip(keys, cols, strict=True) if k not in by_key]
    where = [(k, c) for k, c in zip(keys, cols, strict=True) if k in by_key]
    name = table.name
    if dialect.name == "postgresql":
        def array_type(col: str) -> str:
            col_type = table.c[col].type
            return "text[]" if isinstance(col_type, JSON) else f"{col_type.compile(dialect=dialect)}[]"

        def value(key: str, col: str) -> str:
            return f"v.{key}::json" if isinstance(table.c[col].type, JSON) else f"v.{key}"

        sql = (f"UPDATE {name} AS t SET {', '.join(f'{c} = {value(k, c)}' for k, c in sets)} "  # noqa: S608 - our own names
               f"FROM unnest({', '.join(f'%b::{array_type(c)}' for c in cols)}) AS v({', '.join(keys)}) "
               f"WHERE {' AND '.join(f't.{c} = v.{k}' for k, c in where)}")
    else:
        sql = (f"UPDATE {name} SET {', '.join(f'{c} = ?' for _, c in sets)} "  # noqa: S608 - our own names
               f"WHERE {' AND '.join(f'{c} = ?' for _, c in where)}")
    return sql, cols


def _processed(row: tuple[Any, ...], procs: list[tuple[int, Any]]) -> tuple[Any, ...]:
    out = list(row)
    for i, p in procs:
        out[i] = p(out[i])
    return tuple(out)


@contextmanager
def import_cache(conn: Connection) -> Iterator[None]:
    """A bigger page cache for this SQLite connection while it imports (restored afterwards): the indexes of a table
    of millions of rows no longer fit SQLite's default 2 MB, and every insert would go back to the OS for pages."""
    if conn.dialect.name != "sqlite":
        yield
        return
    cur = cursor(conn)
    cur.execute("PRAGMA cache_size")
    before = int(cur.fetchone()[0])
    cur.execute(f"PRAGMA cache_size = {-SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        cur.execute(f"PRAGMA cache_size = {before}")


def existing(conn: Connection, column: Any, ids: list[str]) -> set[str]:
    """Which of ``ids`` are values of ``column`` (looked up 500 at a time)."""
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found.update(conn.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def category_codes(conn: Connection) -> frozenset[str]:
    """Every category created with PUT /v1/categories (E4: an order may name only these)."""
    return frozenset(conn.execute(select(t.categories.c.code)).scalars())


class PreparedRows:
    """New rows of several tables in driver form, built where there is no connection (the bulk import's builder
    processes), written later by :meth:`write` in the caller's transaction.

    Each table's rows get the same bind processing as :func:`insert_rows`' driver path (instants, JSON) and, on
    PostgreSQL, are formatted as ``COPY`` text by psycopg's own formatter — so that the process that writes only
    sends them. A ``numbered`` table's rows get their ids at :meth:`write` (:func:`new_ids`, as
    :func:`~aftersales.store.repositories.insert_with_ids` and the ledger's writer take them), and another table's
    rows may name them (``refs``: the column, the numbered table, and per row the index of the row it names)."""

    def __init__(self, dialect: Any) -> None:
        self.pg = dialect.name == "postgresql"
        self.dialect = dialect
        #: (table name, the column :meth:`write` fills in first or None, the columns of the rows, the rows — COPY text
        #: lines (bytes) on PostgreSQL, tuples on SQLite —, the numbered table and row indexes that column names)
        self.parts: list[tuple[str, str | None, tuple[str, ...], list[Any], tuple[str, list[int]] | None]] = []
        self._formatter: Any = None

    def add(self, table: Table, cols: Sequence[str], rows: Sequence[tuple[Any, ...]], *, numbered: bool = False,
            refs: tuple[str, str, list[int]] | None = None) -> None:
        """``rows`` of ``table`` (Python values in ``cols`` order): without their ``id`` if ``numbered``; without the
        column ``refs`` = (column, numbered table, index of the row it names, per row) fills in."""
        if not rows:
            return
        procs = _bind_processors(self.dialect, table, tuple(cols))
        out: list[Any] = [_processed(row, procs) for row in rows] if procs else list(rows)
        if self.pg:
            out = self._text(out, lines=numbered or refs is not None)
        first = "id" if numbered else refs[0] if refs is not None else None
        self.parts.append((table.name, first, tuple(cols), out, (table.name, []) if numbered else
                           (refs[1], refs[2]) if refs is not None else None))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (from a builder process to the writing one): the rows, not the dialect nor the formatter."""
        return {"pg": self.pg, "parts": self.parts, "dialect": None, "_formatter": None}

    def _text(self, rows: list[tuple[Any, ...]], *, lines: bool) -> list[bytes]:
        """``rows`` as ``COPY`` text, formatted as ``Copy.write_row`` formats a row (psycopg's ``format_row_text``,
        its C version when installed, with a transformer of its own): a line per row when ``lines`` (:meth:`write`
        puts each row's id in front), else one string for them all (to send, and to pickle, at once)."""
        if self._formatter is None:
            from psycopg._copy_base import format_row_text
            from psycopg.adapt import Transformer

            self._formatter = (format_row_text, Transformer())
        format_row, tx = self._formatter
        out = bytearray()
        if not lines:
            for row in rows:
                format_row(row, tx, out)
            return [bytes(out)]
        ends = []
        for row in rows:
            format_row(row, tx, out)
            ends.append(len(out))
        data = bytes(out)
        return [data[a:b] for a, b in zip([0, *ends], ends, strict=False)]

    def write(self, conn: Connection) -> dict[str, list[int]]:
        """Append every table's rows (COPY on PostgreSQL, the driver's executemany on SQLite), in the order they were
        added; returns the ids given to each numbered table's rows."""
        ids: dict[str, list[int]] = {}
        cur = cursor(conn)
        for name, first, cols, rows, numbering in self.parts:
            keys: list[int] = []
            if numbering is not None and numbering[0] == name:
                got = new_ids(conn, t.metadata.tables[name], len(rows))
                assert got is not None, "prepared rows are written in a transaction"
                keys = ids[name] = got
            elif numbering is not None:
                named = ids[numbering[0]]
                keys = [named[k] for k in numbering[1]]
            all_cols = (first, *cols) if first else cols
            with driver_errors(conn, f"COPY {name}"):
                if self.pg:
                    data = b"".join(b"%d\t%b" % (k, line) for k, line in zip(keys, rows, strict=True)) if first \
                        else b"".join(rows)
                    with cur.copy(f"COPY {name} ({', '.join(all_cols)}) FROM STDIN") as copy:
                        copy.write(data)
                else:
                    copy_rows(cur, False, name, all_cols,
                              [(k, *row) for k, row in zip(keys, rows, strict=True)] if first else rows)
        return ids
