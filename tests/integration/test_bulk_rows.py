"""The driver's bulk path (store/bulk.py ``insert_rows``: COPY on PostgreSQL, the driver's executemany on SQLite),
which a batch of due deadlines takes for its events and ledger rows (issue 13), writes exactly the rows SQLAlchemy's
executemany writes: the same values read back, and on PostgreSQL the same JSON text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from aftersales.service.context import run
from aftersales.store import bulk
from aftersales.store import tables as t
from aftersales.store.repositories import insert_with_ids

AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
#: Values a text COPY must escape (tab, newline, backslash, a quote), non-ASCII text, JSON's null and nesting.
ODD = ["plain", "tab\there", "new\nline", "back\\slash \\N", 'quote "q"', "退款 reembolso", ""]


def _event(i: int, prefix: str) -> dict:
    odd = ODD[i % len(ODD)]
    return {"order_id": None if i % 5 == 0 else f"{prefix}-o{i}", "case_id": f"{prefix}-c{i}", "group_id": None,
            "kind": "probe", "actor": "system",
            # an instant in another zone: stored as the same UTC instant
            "at": (AT + timedelta(seconds=i)).astimezone(timezone(timedelta(hours=8))),
            "rules": ["M1", odd] if i % 2 else [], "from_status": odd or None, "to_status": None,
            "data": {"i": i, "text": odd, "none": None, "nested": {"list": [1, 2.5, True, None, odd]}, "big": 2**62},
            "recorded_at": AT}


def _stored(ctx, prefix: str) -> list[tuple]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.events).where(t.events.c.case_id.like(f"{prefix}-%")).order_by(t.events.c.id)).mappings()
        out = [tuple((k, str(v).replace(prefix, "X") if k in ("order_id", "case_id") else v)
                     for k, v in r.items() if k != "id") for r in rows]
        if ctx.engine.dialect.name == "postgresql":  # the JSON text itself, not only its value
            out += [tuple(r) for r in conn.execute(text(
                "SELECT replace(data::text, :p, 'X'), rules::text FROM events WHERE case_id LIKE :like ORDER BY id"),
                {"p": prefix, "like": f"{prefix}-%"})]
    return out


def test_bulk_rows_equal_sqlalchemy_rows(ctx):
    n = bulk.BULK_ROWS + 7

    def old(uow) -> None:
        uow.conn.execute(insert(t.events), [_event(i, "zold") for i in range(n)])

    def new(uow) -> list[int]:
        return insert_with_ids(uow.conn, t.events, [_event(i, "znew") for i in range(n)])

    run(ctx, old)
    ids = run(ctx, new)
    assert len(ids) == n and ids == sorted(ids)
    with ctx.engine.connect() as conn:
        stored = dict(conn.execute(select(t.events.c.case_id, t.events.c.id).where(t.events.c.case_id.like("znew-%"))).all())
    assert [stored[f"znew-c{i}"] for i in range(n)] == ids, "each row under the id returned for it"
    assert _stored(ctx, "znew") == _stored(ctx, "zold")


def test_bulk_rows_refuse_a_naive_instant_as_sqlalchemy_does(ctx):
    rows = [(i, *_event(i, "naive").values()) for i in range(1, bulk.BULK_ROWS + 1)]
    at = list(t.events.c.keys()).index("at")
    rows[3] = (*rows[3][:at], datetime(2026, 3, 1), *rows[3][at + 1:])  # a naive instant: the point of the test
    with pytest.raises(ValueError, match="naive"):
        run(ctx, lambda uow: bulk.insert_rows(uow.conn, t.events, tuple(t.events.c.keys()), rows))


def _orders(ctx, prefix: str) -> list[tuple]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.orders).where(t.orders.c.id.like(f"{prefix}-%")).order_by(t.orders.c.id)).mappings()
        out = [(*((k, v.replace(prefix, "X") if isinstance(v, str) else v) for k, v in r.items() if k != "state"),
                str(r["state"]).replace(prefix, "X")) for r in rows]
        if ctx.engine.dialect.name == "postgresql":
            out += [tuple(r) for r in conn.execute(text(
                "SELECT replace(state::text, :p, 'X') FROM orders WHERE id LIKE :like ORDER BY id"),
                {"p": prefix, "like": f"{prefix}-%"})]
    return out


def _changes(prefix: str, n: int, seen: int) -> list[dict]:
    return [{"b_id": f"{prefix}-o{i}", "b_seen": seen, "v_status": ODD[i % len(ODD)][:24], "v_refunded_fen": i * 100,
             "v_group_id": None, "v_paid_at": (AT + timedelta(minutes=i)).astimezone(timezone(timedelta(hours=-5))),
             "v_version": seen + 1, "v_state": {"id": f"{prefix}-o{i}", "text": ODD[i % len(ODD)], "none": None, "n": [i, 1.5]}}
            for i in range(n)]


def test_update_rows_equal_sqlalchemy_updates_and_count_what_they_changed(ctx):
    from aftersales.store.repositories import _order_update
    from aftersales.testing import seed_open_cases

    n = bulk.BULK_ROWS + 3
    seed_open_cases(ctx, n, AT, prefix="zold")
    seed_open_cases(ctx, n, AT, prefix="znew")
    with ctx.engine.connect() as conn:
        seen = conn.execute(select(t.orders.c.version).where(t.orders.c.id == "zold-o0")).scalar_one()
    old, new = _changes("zold", n, seen), _changes("znew", n, seen)
    new[5]["b_seen"] = seen + 7  # somebody else's version: that row is left alone, and the count says so
    old.pop(5)

    def old_way(uow) -> int:
        return int(uow.conn.execute(_order_update(tuple(k for k in old[0] if k.startswith("v_"))), old).rowcount)

    def new_way(uow) -> int:
        return bulk.update_rows(uow.conn, t.orders, {"b_id": "id", "b_seen": "version"}, new)

    assert run(ctx, old_way) == n - 1
    assert run(ctx, new_way) == n - 1
    assert _orders(ctx, "znew") == _orders(ctx, "zold")


def test_bulk_path_errors_are_sqlalchemy_errors(ctx):
    """A statement sent straight through the driver fails as SQLAlchemy's would (so conflicts are retried, F2)."""
    rows = [(i, *_event(i, "dup").values()) for i in range(1, bulk.BULK_ROWS + 1)]
    with pytest.raises(IntegrityError), ctx.engine.begin() as conn:
        bulk.insert_rows(conn, t.events, tuple(t.events.c.keys()), rows + rows[:1])


def test_F2_a_write_failing_in_a_bulk_batch_is_isolated_to_its_case(ctx):
    """F2: one case's write fails inside a batch written through the bulk path (its settlement's ledger key is
    already taken): the batch is applied again case by case, that case's action is kept for a retry with the error,
    and every other case is applied."""
    from aftersales.service import deadlines
    from aftersales.service.deadlines import Pass
    from aftersales.testing import seed_open_cases

    now = AT + timedelta(hours=49)
    run(ctx, lambda uow: ctx.clock.set(uow.conn, now))
    seed_open_cases(ctx, 1, AT, prefix="ref")
    assert deadlines.apply_due(ctx, now) == 3
    with ctx.engine.begin() as conn:
        tx = conn.execute(select(t.ledger_transactions).where(t.ledger_transactions.c.case_id == "ref-c0")).mappings().one()
        taken = {k: v.replace("ref-", "bad-") if isinstance(v, str) else v for k, v in tx.items() if k != "id"}
        conn.execute(insert(t.ledger_transactions).values(**taken))
    n = bulk.BULK_ROWS + 5
    seed_open_cases(ctx, n, AT, prefix="bad")
    done = Pass()
    fired = deadlines.apply_due(ctx, now, batch=3 * n, out=done)
    assert [(f.subject_id, f.action, f.error, f.attempts) for f in done.failed] == [("bad-c0", "auto_approve", "IntegrityError", 1)]
    assert fired == 3 * n - 1, "the failing case's reminders applied, its approval kept"
    with ctx.engine.connect() as conn:
        left = conn.execute(select(t.timers.c.subject_id, t.timers.c.action)).all()
        settled = conn.execute(select(func.count()).select_from(t.ledger_transactions)
                               .where(t.ledger_transactions.c.case_id.like("bad-%"))).scalar_one()
    assert [tuple(r) for r in left] == [("bad-c0", "auto_approve")]
    assert settled == n, "n - 1 settlements, and the one posted beforehand"
