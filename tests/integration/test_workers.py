"""Durable deadlines with several worker processes on PostgreSQL: 10,000 due deadlines, each applied exactly
once, none missed — also when a worker is killed with SIGKILL halfway and another is started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from aftersales.service.context import run
from aftersales.store import tables as t
from aftersales.testing import seed_open_cases

CLOCK_START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # the manual clock's start in tests/conftest.py

N_CASES = 3334  # × 3 timers = 10,002 due deadlines


def _worker(database, env_extra=None) -> subprocess.Popen:
    env = {**os.environ, **database.env(), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "aftersales.cli", "worker", "--once"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _count(ctx, stmt) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _fired_events(ctx) -> Counter:
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.events.c.case_id, t.events.c.kind, t.events.c.data)
                            .where(t.events.c.kind.in_(["remind_merchant", "auto_approve"]))).all()
    return Counter((r.case_id, r.kind, r.data["due_at"]) for r in rows)


def _seed(ctx):
    case_ids = seed_open_cases(ctx, N_CASES, CLOCK_START)

    def move(uow):
        ctx.clock.set(uow.conn, CLOCK_START + timedelta(hours=49))

    run(ctx, move)
    assert _count(ctx, select(func.count()).select_from(t.timers)) == 3 * N_CASES
    return case_ids


def _check_exactly_once(ctx, case_ids):
    assert _count(ctx, select(func.count()).select_from(t.timers)) == 0, "no deadline missed"
    fired = _fired_events(ctx)
    assert all(n == 1 for n in fired.values()), "no deadline applied twice"
    per_case = Counter(case for case, _, _ in fired)
    assert len(per_case) == len(case_ids) and set(per_case.values()) == {3}
    assert _count(ctx, select(func.count()).select_from(t.refunds)) == len(case_ids), "one refund per case"
    assert _count(ctx, select(func.count()).select_from(t.cases).where(t.cases.c.close_reason == "refunded")) == len(case_ids)
    # M1 order per case: both reminders before the automatic approval.
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.events.c.case_id, t.events.c.kind).where(t.events.c.kind.in_(["remind_merchant", "auto_approve"]))
                            .order_by(t.events.c.id)).all()
    seen: dict[str, list[str]] = {}
    for r in rows:
        seen.setdefault(r.case_id, []).append(r.kind)
    assert all(kinds == ["remind_merchant", "remind_merchant", "auto_approve"] for kinds in seen.values())


def _wait(procs, timeout=300):
    deadline = time.monotonic() + timeout
    for p in procs:
        p.wait(timeout=max(1, deadline - time.monotonic()))
        assert p.returncode == 0, p.stderr.read().decode()[-2000:] if p.stderr else p.returncode


@pytest.mark.slow
def test_three_workers_apply_10000_deadlines_exactly_once(database, ctx):
    if database.kind != "postgresql":
        pytest.skip("several workers at once is the PostgreSQL deployment (SKIP LOCKED); SQLite runs one")
    case_ids = _seed(ctx)
    procs = [_worker(database) for _ in range(3)]
    _wait(procs)
    _check_exactly_once(ctx, case_ids)


@pytest.mark.slow
def test_worker_killed_halfway_loses_and_duplicates_nothing(database, ctx):
    if database.kind != "postgresql":
        pytest.skip("several workers at once is the PostgreSQL deployment (SKIP LOCKED); SQLite runs one")
    case_ids = _seed(ctx)
    procs = [_worker(database) for _ in range(3)]
    total = 3 * N_CASES
    deadline = time.monotonic() + 120
    while _count(ctx, select(func.count()).select_from(t.timers)) > total // 2:
        assert time.monotonic() < deadline, "workers made no progress"
        time.sleep(0.05)
    os.killpg(procs[0].pid, signal.SIGKILL)
    procs[0].wait()
    replacement = _worker(database)
    _wait([*procs[1:], replacement])
    # A worker that exited early while others held locked batches is harmless; one more pass finds nothing left.
    last = _worker(database)
    _wait([last])
    _check_exactly_once(ctx, case_ids)


def test_single_worker_on_sqlite_applies_everything_once(database, ctx):
    if database.kind != "sqlite":
        pytest.skip("covered with three workers on PostgreSQL")
    global N_CASES
    saved, N_CASES = N_CASES, 300
    try:
        case_ids = _seed(ctx)
        _wait([_worker(database)])
        _check_exactly_once(ctx, case_ids)
    finally:
        N_CASES = saved
