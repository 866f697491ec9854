"""Durable deadlines: every pending automatic action is a row in ``timers`` written with its state.

:func:`apply_due` applies due rows a batch per transaction, exactly once. A row is deleted in the transaction
that applies it; a row of a stage the case has left is stale and simply dropped (the domain's ``fire`` would
refuse it too). Several workers may run at once: on PostgreSQL each claims its batch with
``FOR UPDATE SKIP LOCKED``; on SQLite writers are serialised. Due order holds per case even across workers:
applying a timer first applies every earlier due timer of the same case, in due order, in the same
transaction (so a reminder never comes after the deadline it announces). Within a batch, aggregates are
locked in id order so that two workers never deadlock. The manual clock (``POST /v1/clock/advance``) and the
worker share this code path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aftersales.domain import cases as dcases
from aftersales.domain.groups import GroupStatus
from aftersales.store import repositories as repo

from .context import Context, UnitOfWork, run
from .orders import group_orders
from .payments import settle_new_refunds

BATCH = 200

#: Timers of other aggregates: ``subject`` → the module whose ``apply_timer(ctx, uow, row, now) -> int`` applies
#: one due row (it checks itself that the row is not stale, e.g. by comparing a stage). Imported lazily: those
#: service modules import this one's neighbours.
SUBJECT_MODULES = {"complaint": "aftersales.service.complaints", "withdrawal": "aftersales.service.deposits"}


def _handler(subject: str) -> Callable[[Context, UnitOfWork, Any, datetime], int]:
    apply_timer: Callable[[Context, UnitOfWork, Any, datetime], int] = importlib.import_module(SUBJECT_MODULES[subject]).apply_timer
    return apply_timer


def _apply_group(ctx: Context, uow: UnitOfWork, row: Any, now: datetime) -> bool:
    group = uow.tracker.get_group(row.subject_id, lock=True)
    if group is None or group.status is not GroupStatus.PENDING:
        return False
    orders = group_orders(uow, group)
    group.expire(orders, now)
    for member in orders:
        settle_new_refunds(member, ctx.gateway, group.expires_at)
    return True


def _apply_case(ctx: Context, uow: UnitOfWork, row: Any, now: datetime) -> int:
    """Apply the row's timer after every earlier due timer of its case; returns how many fired."""
    order = uow.tracker.get_order(row.order_id, lock=True)
    if order is None:
        return 0
    case = order.case(row.subject_id)
    fired = 0
    while True:
        due = [d for d in case.timers() if d.due_at <= row.due_at and d.due_at <= now]
        if not due:
            return fired
        timer = min(due, key=lambda d: (d.due_at, d.action != dcases.Auto.REMIND_MERCHANT))
        if not dcases.fire(order, case.id, timer.action, timer.stage, now, ctx.policy, due_at=timer.due_at):
            return fired
        settle_new_refunds(order, ctx.gateway, timer.due_at)
        fired += 1


def apply_batch(ctx: Context, now: datetime, limit: int = BATCH) -> tuple[int, int]:
    """Apply up to ``limit`` due timers, the earliest first, in one transaction, with every other due timer of their
    cases. Returns (rows taken, actions that changed something)."""

    def cmd(uow: UnitOfWork) -> tuple[int, int]:
        rows = repo.due_timers(uow.conn, now, limit, skip_locked=True)
        if not rows:
            return 0, 0
        # A case's other due timers come along (M1: its reminders and its deadline), so that a backlog loads and
        # writes each aggregate once rather than once per timer; they are applied in due order below, as they
        # would be by later batches. Rows another worker holds are left to it (SKIP LOCKED on PostgreSQL).
        rows += repo.due_case_timers(uow.conn, now, (r.subject_id for r in rows if r.subject == "case"),
                                     (r.id for r in rows), skip_locked=True)
        repo.delete_timers(uow.conn, [r.id for r in rows])
        live = [r for r in rows if r.subject != "case" or (r.case_stage is not None and r.case_stage == r.stage)]
        uow.tracker.load_orders((r.order_id for r in live if r.subject == "case"), lock=True)
        fired = 0
        for row in sorted(live, key=lambda r: (r.order_id or r.subject_id, r.due_at, r.id)):
            if row.subject == "case":
                fired += _apply_case(ctx, uow, row, now)
            elif row.subject == "group":
                fired += _apply_group(ctx, uow, row, now)
            else:
                fired += _handler(row.subject)(ctx, uow, row, now)
        return len(rows), fired

    return run(ctx, cmd)


def apply_due(ctx: Context, now: datetime, *, limit: int | None = None, batch: int = BATCH) -> int:
    """Apply every automatic action due at ``now``; returns how many changed something."""
    fired = taken_total = 0
    while limit is None or taken_total < limit:
        taken, changed = apply_batch(ctx, now, batch if limit is None else min(batch, limit - taken_total))
        if taken == 0:
            break
        taken_total += taken
        fired += changed
    return fired


def advance_clock(ctx: Context, seconds: int) -> tuple[datetime, int]:
    """API.md manual clock: move it and apply everything that fell due before answering."""

    def cmd(uow: UnitOfWork) -> datetime:
        new = uow.now + timedelta(seconds=seconds)
        ctx.clock.set(uow.conn, new)
        return new

    new_now = run(ctx, cmd)
    return new_now, apply_due(ctx, new_now)
