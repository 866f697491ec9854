"""Writing many rows at once, straight through the driver, in the caller's transaction: ``COPY … FROM STDIN`` on
PostgreSQL, ``executemany`` on SQLite. Used by the store's one batch writer
(:meth:`aftersales.store.repositories.Batch.write`) and the ledger's (:func:`aftersales.store.ledger.write`), for a unit
of work's few rows and the bulk import's thousands alike."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import JSON, Connection, Table, func, insert, select

from . import tables as t

#: Below this many rows a table's rows go in through SQLAlchemy (one prepared executemany), above it through the
#: driver's bulk path: COPY costs a round trip of its own, which a handful of rows does not repay.
BULK_ROWS = 1000
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
    if len(rows) == 1:
        return [int(conn.execute(insert(table).returning(table.c.id), rows[0]).scalar_one())]
    if conn.dialect.name == "sqlite":
        # One multi-row INSERT: its rows take the next rowids in the order of its VALUES (what new_ids counts on),
        # and SQLAlchemy would otherwise send an ordered RETURNING one row at a time.
        return sorted(int(i) for i in conn.execute(insert(table).values(rows).returning(table.c.id)).scalars().all())
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)  # PostgreSQL: one INSERT … SELECT
    return [int(i) for i in conn.execute(stmt, rows).scalars().all()]


def cursor(conn: Connection) -> Any:
    """A cursor of the driver's connection under ``conn`` (same transaction)."""
    raw: Any = conn.connection.driver_connection
    return raw.cursor()


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
    driver's bulk path with the columns' own bind processing (SQLite: UTC instants as text; JSON as text)."""
    if not rows:
        return
    if len(rows) < BULK_ROWS:
        conn.execute(insert(table), [dict(zip(cols, row, strict=True)) for row in rows])
        return
    pg = conn.dialect.name == "postgresql"
    procs = _driver_form(conn.dialect, table, tuple(cols))
    if procs:
        rows = [_processed(row, procs) for row in rows]
    copy_rows(cursor(conn), pg, table.name, cols, rows)


def _driver_form(dialect: Any, table: Table, cols: tuple[str, ...]) -> list[tuple[int, Any]]:
    """(position, converter) of the columns whose values the driver's bulk path cannot take as they are: on SQLite
    each column's own bind processing; on PostgreSQL the JSON columns, as text (COPY would write bytes as bytea)."""
    if dialect.name != "postgresql":
        return [(i, p) for i, c in enumerate(cols) if (p := table.c[c].type.bind_processor(dialect)) is not None]
    serializer = getattr(dialect, "_json_serializer", None) or json.dumps

    def js(value: Any) -> str:
        out = serializer(value)
        return out.decode() if isinstance(out, bytes) else str(out)

    return [(i, js) for i, c in enumerate(cols) if isinstance(table.c[c].type, JSON)]


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
