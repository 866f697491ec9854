"""Deadline batches (service/deadlines.py): a claimed timer brings its case's other due timers along, and ids of
events and ledger transactions are taken before the insert (store/repositories.py). Neither may change what is
applied: the same events in the same order per case (M1 reminders before the automatic approval), the same
refunds, the same ledger postings, each timer exactly once, and timers not yet due left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from aftersales.service import deadlines
from aftersales.service.context import run
from aftersales.store import repositories as repo
from aftersales.store import tables as t
from aftersales.testing import seed_open_cases

OPENED = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # the manual clock's start in tests/conftest.py


def _count(ctx, table, *where) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _applied(ctx, prefix: str) -> dict[str, Any]:
    """Everything the deadlines wrote for the cases of ``prefix``, with the prefix taken out of ids and keys."""

    def norm(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(f"{prefix}-", "X-")
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        return value

    with ctx.engine.connect() as conn:
        ev = t.events.c
        events: dict[str, list[Any]] = {}
        for r in conn.execute(select(t.events).where(ev.case_id.like(f"{prefix}-%")).order_by(ev.id)).mappings():
            events.setdefault(norm(r["case_id"]), []).append(norm({k: v for k, v in r.items() if k != "id"}))
        tx = t.ledger_transactions.c
        ledger = sorted(
            (norm(r.key), r.kind, r.at, norm(r.order_id), norm(r.case_id), r.rule, r.amount_fen,
             tuple(sorted((norm(e.account), e.debit_fen, e.credit_fen) for e in conn.execute(
                 select(t.ledger_entries).where(t.ledger_entries.c.transaction_id == r.id)))))
            for r in conn.execute(select(t.ledger_transactions).where(tx.case_id.like(f"{prefix}-%"))))
        refunds = sorted(tuple(sorted(norm(dict(r)).items()))
                         for r in conn.execute(select(t.refunds).where(t.refunds.c.case_id.like(f"{prefix}-%"))).mappings())
        cases = sorted(tuple(sorted(norm(dict(r)).items())) for r in conn.execute(
            select(t.cases).where(t.cases.c.id.like(f"{prefix}-%"))).mappings())
        orders = sorted(tuple(sorted(norm(dict(r)).items())) for r in conn.execute(
            select(t.orders).where(t.orders.c.id.like(f"{prefix}-%"))).mappings())
    return {"events": events, "ledger": ledger, "refunds": refunds, "cases": cases, "orders": orders}


def _move_clock(ctx, now: datetime) -> None:
    run(ctx, lambda uow: ctx.clock.set(uow.conn, now))


@pytest.mark.parametrize(("n", "batch"), [(40, 7), (105, 315)])
def test_a_backlog_applied_with_its_siblings_writes_what_one_timer_at_a_time_wrote(ctx, monkeypatch, n, batch):
    """batch 315: the whole backlog in one transaction, its orders, cases, refunds, events and ledger rows (≥ 100 each)
    written through the driver's bulk path (store/bulk.py ``insert_rows``, ``update_rows``: COPY, UPDATE … FROM unnest)."""
    now = OPENED + timedelta(hours=49)
    _move_clock(ctx, now)
    # The reference: each claimed timer applied alone (no sibling comes along), one timer per transaction.
    seed_open_cases(ctx, n, OPENED, prefix="one")
    with monkeypatch.context() as m:
        m.setattr(repo, "due_case_timers", lambda *a, **k: [])
        assert deadlines.apply_due(ctx, now, batch=1) == 3 * n
    assert _count(ctx, t.timers) == 0
    # The same backlog, in batches that bring each case's other due timers along.
    seed_open_cases(ctx, n, OPENED, prefix="many")
    taken, fired = deadlines.apply_batch(ctx, now, batch)
    expected = min(3 * batch, 3 * n)
    assert (taken, fired) == (expected, expected), "each claimed timer comes with its case's 2 other due timers"
    assert deadlines.apply_due(ctx, now, batch=batch) == 3 * n - taken
    assert _count(ctx, t.timers) == 0

    one, many = _applied(ctx, "one"), _applied(ctx, "many")
    assert len(one["events"]) == n and len(one["ledger"]) == n and len(one["refunds"]) == n
    for kinds in ([e["kind"] for e in evs] for evs in many["events"].values()):
        assert kinds[:4] == ["opened", "remind_merchant", "remind_merchant", "auto_approve"]
    assert many == one


def test_timers_not_yet_due_stay_for_later(ctx):
    seed_open_cases(ctx, 3, OPENED, prefix="early")
    at_40h = OPENED + timedelta(hours=40)  # the 36 h reminder is due; the 46 h reminder and the 48 h approval are not
    assert deadlines.apply_batch(ctx, at_40h, 1) == (1, 1)
    assert _count(ctx, t.timers) == 8
    assert deadlines.apply_due(ctx, at_40h) == 2
    assert _count(ctx, t.timers) == 6 and _count(ctx, t.refunds) == 0
    assert deadlines.apply_due(ctx, OPENED + timedelta(hours=48)) == 6
    assert _count(ctx, t.timers) == 0 and _count(ctx, t.refunds) == 3
    assert _count(ctx, t.events, t.events.c.kind == "remind_merchant") == 6


def test_ids_taken_before_the_insert_are_the_ones_the_database_gives(ctx):
    def cmd(uow) -> tuple[list[int], int]:
        rows = [{"order_id": None, "case_id": f"ids-{i}", "group_id": None, "kind": "probe", "actor": "system", "at": uow.now,
                 "rules": [], "from_status": None, "to_status": None, "data": {"i": i}, "recorded_at": uow.now} for i in range(5)]
        ids = repo.insert_with_ids(uow.conn, t.events, rows)
        # The next row the database numbers itself comes after them, without a collision.
        probe = {k: v for k, v in rows[0].items() if k != "id"} | {"case_id": "ids-after"}
        after = uow.conn.execute(insert(t.events).returning(t.events.c.id), probe).scalar_one()
        uow.tracker.flush()
        return ids, int(after)

    first, after = run(ctx, cmd)
    assert first == sorted(first) and len(set(first)) == 5 and after > max(first)
    with ctx.engine.connect() as conn:
        stored = dict(conn.execute(select(t.events.c.case_id, t.events.c.id).where(t.events.c.kind == "probe")).all())
    assert [stored[f"ids-{i}"] for i in range(5)] == first
    second, _ = run(ctx, cmd)
    assert min(second) > after


@pytest.mark.parametrize("batch", [1, 500])
def test_each_case_fires_in_due_order_exactly_once(ctx, batch):
    case_ids = seed_open_cases(ctx, 25, OPENED, prefix=f"order{batch}")
    now = OPENED + timedelta(hours=49)
    assert deadlines.apply_due(ctx, now, batch=batch) == 75
    assert deadlines.apply_due(ctx, now, batch=batch) == 0
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.events.c.case_id, t.events.c.kind, t.events.c.data).order_by(t.events.c.id)).all()
    per_case: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        if r.kind in ("remind_merchant", "auto_approve"):
            per_case.setdefault(r.case_id, []).append((r.kind, r.data["due_at"]))
    assert set(per_case) == set(case_ids)
    for fired in per_case.values():
        assert [k for k, _ in fired] == ["remind_merchant", "remind_merchant", "auto_approve"]
        assert [d for _, d in fired] == sorted(d for _, d in fired)
