"""The hot path's statements sent straight through the driver (store/driver.py, issue 13) do what SQLAlchemy's
``Connection.execute`` of the same statements does, on both databases: the same rows written (values and, on
PostgreSQL, the JSON text), the same rows read (values and types, instants aware in UTC, JSON decoded), the same
rowcounts, the same ids in the same order, the same errors (SQLAlchemy's kinds), and the engine's statement
listeners still see every statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, create_engine, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from aftersales.service.context import UnitOfWork, run
from aftersales.service.errors import Conflict
from aftersales.store import driver
from aftersales.store import tables as t
from aftersales.store.bulk import insert_of, insert_returning_ids
from aftersales.testing import sql_statements

AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
ODD = ["plain", "tab\there", "new\nline", "back\\slash \\N", 'quote "q"', "退款 reembolso", ""]
_EVENTS_OF = select(t.events).where(t.events.c.case_id == bindparam("case_id")).order_by(t.events.c.id)
_RENAME = update(t.events).where(t.events.c.case_id == bindparam("b_case")).values(to_status=bindparam("v_to"))
_INSERT_EVENT_RETURNING = insert(t.events).returning(t.events.c.id)


def _event(i: int, case_id: str) -> dict[str, Any]:
    odd = ODD[i % len(ODD)]
    return {"order_id": None if i % 3 == 0 else f"o{i}", "case_id": case_id, "group_id": None, "kind": "probe",
            "actor": "system", "at": (AT + timedelta(seconds=i)).astimezone(timezone(timedelta(hours=8))),
            "rules": ["M1", odd] if i % 2 else [], "from_status": odd or None, "to_status": None,
            "data": {"i": i, "text": odd, "none": None, "nested": {"list": [1, 2.5, True, None, odd]}, "big": 2**62},
            "recorded_at": AT}


def _stored(ctx: Any, case_id: str) -> list[Any]:
    with ctx.engine.connect() as conn:
        rows = [tuple((k, v) for k, v in r.items() if k not in ("id", "case_id"))
                for r in conn.execute(_EVENTS_OF, {"case_id": case_id}).mappings()]
        if ctx.engine.dialect.name == "postgresql":  # the JSON text itself, not only its value
            rows += [tuple(r) for r in conn.execute(text(
                "SELECT data::text, rules::text FROM events WHERE case_id = :c ORDER BY id"), {"c": case_id})]
    return rows


def test_executemany_writes_the_rows_sqlalchemy_writes(ctx: Any) -> None:
    # these statements do take the driver's path (not SQLAlchemy's fallback): the comparisons below compare two paths
    dialect = ctx.engine.dialect
    assert driver.plan(dialect, insert_of(t.events), tuple(_event(0, "x"))) is not None
    assert driver.plan(dialect, _EVENTS_OF, ("case_id",)) is not None
    assert driver.plan(dialect, _RENAME, ("b_case", "v_to")) is not None
    run(ctx, lambda uow: uow.conn.execute(insert(t.events), [_event(i, "sa") for i in range(9)]))
    assert run(ctx, lambda uow: driver.executemany(uow.conn, insert_of(t.events), [_event(i, "drv") for i in range(9)])) == 9
    run(ctx, lambda uow: driver.executemany(uow.conn, insert_of(t.events), [_event(0, "one")]))
    assert _stored(ctx, "drv") == _stored(ctx, "sa")
    assert _stored(ctx, "one") == _stored(ctx, "sa")[:1] + ([_stored(ctx, "sa")[9]] if ctx.engine.dialect.name == "postgresql" else [])


def test_rows_read_through_the_driver_are_sqlalchemy_rows(ctx: Any) -> None:
    run(ctx, lambda uow: uow.conn.execute(insert(t.events), [_event(i, "read") for i in range(7)]))
    with ctx.engine.connect() as conn:
        theirs = conn.execute(_EVENTS_OF, {"case_id": "read"}).all()
        ours = driver.execute(conn, _EVENTS_OF, {"case_id": "read"}).all()
        assert driver.execute(conn, _EVENTS_OF, {"case_id": "none"}).first() is None
    assert [tuple(r) for r in ours] == [tuple(r) for r in theirs]
    assert [r._fields for r in ours[:1]] == [tuple(theirs[0]._fields)]
    for mine, sa in zip(ours, theirs, strict=True):
        assert [type(v) for v in mine] == [type(v) for v in sa]
        assert mine.at.tzinfo is not None and mine.at.utcoffset() == timedelta(0) and mine.data == sa.data


def test_rowcounts_are_sqlalchemy_rowcounts(ctx: Any) -> None:
    run(ctx, lambda uow: uow.conn.execute(insert(t.events), [_event(i, c) for i in range(3) for c in ("ra", "rb")]))
    rows = [{"b_case": "ra", "v_to": "x"}, {"b_case": "rb", "v_to": "y"}, {"b_case": "missing", "v_to": "z"}]
    assert run(ctx, lambda uow: driver.executemany(uow.conn, _RENAME, rows)) == 6
    assert run(ctx, lambda uow: uow.conn.execute(_RENAME, rows).rowcount) == 6
    assert run(ctx, lambda uow: driver.execute(uow.conn, _RENAME, {"b_case": "missing", "v_to": "z"}).rowcount) == 0
    assert run(ctx, lambda uow: driver.executemany(uow.conn, _RENAME, [])) == 0


@pytest.mark.parametrize("n", [1, 2, 5])
def test_returned_ids_are_the_rows_ids_in_order(ctx: Any, n: int) -> None:
    ids = run(ctx, lambda uow: insert_returning_ids(uow.conn, t.events, [_event(i, f"ret{n}-{i}") for i in range(n)]))
    assert ids is not None and len(ids) == n and ids == sorted(ids)
    with ctx.engine.connect() as conn:
        stored = dict(conn.execute(select(t.events.c.case_id, t.events.c.id).where(t.events.c.case_id.like(f"ret{n}-%"))).all())
    assert [stored[f"ret{n}-{i}"] for i in range(n)] == ids


def test_errors_are_sqlalchemy_errors_and_nothing_is_written(ctx: Any) -> None:
    run(ctx, lambda uow: driver.execute(uow.conn, insert_of(t.kv), {"key": "k", "value": "1"}))
    rows = [{"key": "k2", "value": "2"}, {"key": "k", "value": "3"}]
    with UnitOfWork(ctx) as uow, pytest.raises(IntegrityError):
        driver.executemany(uow.conn, insert_of(t.kv), rows)
    with pytest.raises(Conflict):  # as the units of work answer SQLAlchemy's IntegrityError
        run(ctx, lambda uow: driver.executemany(uow.conn, insert_of(t.kv), rows))
    with ctx.engine.connect() as conn:
        assert conn.execute(select(t.kv.c.key, t.kv.c.value).order_by(t.kv.c.key)).all() == [("k", "1")]


def test_a_naive_instant_is_refused_as_sqlalchemy_refuses_it(ctx: Any) -> None:
    bad = {**_event(1, "naive"), "at": datetime(2026, 3, 1)}
    with pytest.raises(ValueError, match="naive"):
        run(ctx, lambda uow: driver.executemany(uow.conn, insert_of(t.events), [_event(0, "naive"), bad]))
    assert _stored(ctx, "naive") == []


def test_statement_listeners_see_the_driver_statements(ctx: Any) -> None:
    with sql_statements(ctx.engine) as seen:
        run(ctx, lambda uow: driver.executemany(uow.conn, insert_of(t.events), [_event(i, "seen") for i in range(2)]))
        run(ctx, lambda uow: driver.execute(uow.conn, _EVENTS_OF, {"case_id": "seen"}).all())
        run(ctx, lambda uow: driver.insert_returning(uow.conn, _INSERT_EVENT_RETURNING, [_event(i, "seen2") for i in range(2)]))
    ours = [(s, m) for s, m in seen if "events" in s]
    assert len(ours) == 3 and ours[0][1] is True and ours[1][0].lstrip().upper().startswith("SELECT")


def test_a_statement_whose_sql_depends_on_its_values_is_left_to_sqlalchemy(ctx: Any) -> None:
    stmt = select(t.events.c.case_id).where(t.events.c.case_id.in_(bindparam("cases", expanding=True))).order_by(t.events.c.case_id)
    assert driver.plan(ctx.engine.dialect, stmt, ("cases",)) is None
    run(ctx, lambda uow: uow.conn.execute(insert(t.events), [_event(i, f"in{i}") for i in range(3)]))
    with ctx.engine.connect() as conn:
        assert driver.execute(conn, stmt, {"cases": ["in0", "in2"]}).scalars().all() == ["in0", "in2"]



def _kill_pooled_backend(ctx: Any) -> int:
    """End the backend of the (only) pooled connection from outside the pool; its pid."""
    with ctx.engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    admin = create_engine(ctx.engine.url)
    with admin.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    admin.dispose()
    return int(pid)


@pytest.mark.parametrize("idle_limit", [0.0, 3600.0])
def test_a_connection_killed_while_idle_is_replaced_before_use(ctx: Any, monkeypatch: pytest.MonkeyPatch,
                                                               idle_limit: float) -> None:
    """The pre-ping for idle connections (store/db.py): a pooled PostgreSQL connection whose backend died while it
    sat idle in the pool longer than ``PING_AFTER_IDLE_SECONDS`` is replaced at checkout, as ``pool_pre_ping`` did;
    one used more recently is handed out unpinged, and its request meets the error (answered 503, api/problems.py)."""
    if ctx.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server connection to lose")
    from aftersales.store import db

    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", idle_limit)
    pid = _kill_pooled_backend(ctx)
    if idle_limit == 0.0:
        with ctx.engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    else:
        with pytest.raises(OperationalError), ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        with ctx.engine.connect() as conn:  # the pool has dropped it
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
