"""Engines: SQLite (WAL, foreign keys, serialised writers) or PostgreSQL through psycopg 3."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given without a driver."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


# JSON columns (aggregate states, event data) go through orjson, several times faster than the standard library,
# with the standard library as the fallback wherever orjson would differ: it refuses what it cannot write exactly
# (integers beyond 64 bits, non-string keys, lone surrogates) and would read integers of 19 digits or more as
# floats, so such documents are read by ``json`` — every value reads back exactly as it did before.
# A run of 19 ASCII digits, found by mapping every digit to "0" and looking for 19 zeros: ~20× faster than the
# regular expression ``\d{19}`` it replaced (36 µs → 2 µs for an 870-character order state; the regex cost four times
# the parse itself). JSON numbers are ASCII digits only, and UTF-8's other bytes are never ASCII digits.
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_NINETEEN_DIGITS = b"0" * 19


def _has_long_number(text: str | bytes) -> bool:
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return _NINETEEN_DIGITS in raw.translate(_DIGITS_TO_ZERO)


def json_dumps_bytes(value: Any) -> bytes:
    """JSON text (UTF-8) of ``value``, as ``json.dumps`` would write it up to spacing and escapes."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value).encode()


def json_dumps_str(value: Any) -> str:
    """The same JSON text as :func:`json_dumps_bytes`, as ``str`` (what SQLite's driver takes)."""
    return json_dumps_bytes(value).decode()


def json_loads(text: str | bytes) -> Any:
    """The value of a JSON text, as ``json.loads`` reads it."""
    if not _has_long_number(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # NaN, Infinity, …: what only ``json`` accepts
            pass
    return json.loads(text)


def make_engine(url: str, *, pool_size: int = 10, schema: str | None = None) -> Engine:
    """Build an engine. ``schema`` (PostgreSQL) isolates a test run in its own schema via ``search_path``."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    connect_args: dict[str, Any] = {}
    if schema:
        # Options the URL carries (``?options=-c%20statement_timeout%3D5s``) are kept: connect_args would replace them.
        given = parsed.query.get("options")
        given = " ".join(given) if isinstance(given, tuple) else given
        connect_args["options"] = " ".join(filter(None, [given, f"-csearch_path={schema}"]))
    # psycopg takes the JSON text as bytes.
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, connect_args=connect_args,
                           json_serializer=json_dumps_bytes, json_deserializer=json_loads)
    _ping_when_idle(engine)
    return engine


#: A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out (a restart of the
#: database while it was idle would have closed it); one used more recently is not (issue 13: SQLAlchemy's
#: ``pool_pre_ping`` cost every unit of work a round trip).
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping`` for the connections that have been idle (:data:`PING_AFTER_IDLE_SECONDS`): a dead one is
    replaced before use, as the pre-ping does (SQLAlchemy's "pessimistic disconnect handling", custom form). A
    connection that died under a request answers that request 503 (api/problems.py) and is replaced by the pool."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is not None and time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS:
            return
        if not _alive(engine, dbapi_conn):
            raise exc.DisconnectionError()  # the pool replaces it, and checks the new one out


def _alive(engine: Engine, dbapi_conn: Any) -> bool:
    try:
        return bool(engine.dialect.do_ping(dbapi_conn))
    except engine.dialect.loaded_dbapi.Error:
        return False


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20, max_overflow=20,
                           json_serializer=json_dumps_str, json_deserializer=json_loads)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # WAL + NORMAL survives a process kill (kill -9) without losing a committed transaction;
        # only an OS crash or power loss could lose the last ones.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # One writer at a time: take the write lock when the transaction starts, so that two commands on
        # one case are serialised instead of failing or losing an update (SQLite has no row locks).
        # Straight through the driver (store/driver.py): what ``exec_driver_sql`` sends, without its execution context.
        from .driver import execute_sql

        execute_sql(conn, "BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
