"""Durable deadlines: every pending automatic action is a row in ``timers`` written with its state.

:func:`apply_due` applies due rows a batch per transaction, exactly once. A row is deleted in the transaction
that applies it; a row of a stage the case has left is stale and simply dropped (the domain's ``fire`` would
refuse it too). Several workers may run at once: on PostgreSQL each claims its batch with
``FOR UPDATE SKIP LOCKED``; on SQLite writers are serialised. Due order holds per case even across workers:
applying a timer first applies every earlier due timer of the same case, in due order, in the same
transaction (so a reminder never comes after the deadline it announces). Within a batch, aggregates are
locked in id order so that two workers never deadlock. The manual clock (``POST /v1/clock/advance``) and the
worker share this code path.

F2 — automatic actions never block one another. A batch's rows are applied per aggregate (a case's order, a
group, a complaint, a withdrawal). The case and group aggregates change only in memory until the batch's single
flush, so a batch where everything applies costs what it always did. When anything fails, the batch is rolled
back and applied again *isolating* each aggregate: its due actions, and the writing of its changes, inside its
own SAVEPOINT. A failure then rolls back that aggregate alone (its objects are dropped from the unit of work's
identity map, to be read again), its earlier actions in the batch are applied again without it, and its row is
kept with one more try, the error, and a later ``next_try_at`` (store/timers.py: backoff; parked for the platform
after ``MAX_ATTEMPTS`` tries). Its later rows wait behind it (due order). Every other aggregate goes on.
Database conflicts (a concurrent change, a deadlock, a locked database) are not failures of an action: the
transaction is retried whole, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError

from aftersales.domain import cases as dcases
from aftersales.domain.errors import DomainError
from aftersales.domain.groups import GroupStatus
from aftersales.store import repositories as repo
from aftersales.store import timers as store_timers
from aftersales.store.repositories import ConcurrentUpdate
from aftersales.store.timers import Failure

from . import complaints, deposits
from .cases import address_approved_returns
from .context import Context, Principal, UnitOfWork, _retryable, read, run
from .errors import NotFound
from .orders import group_orders
from .payments import settle_new_refunds
from .terms import order_policy

BATCH = 200

#: Applies one due row of a subject: ``(ctx, unit of work, row, now) -> actions that changed something``. Each
#: checks itself that its row is not stale (e.g. by comparing a stage) and returns 0 for a stale one.
Applier = Callable[[Context, UnitOfWork, Any, datetime], int]


def _apply_group(ctx: Context, uow: UnitOfWork, row: Any, now: datetime) -> int:
    group = uow.tracker.get_group(row.subject_id, lock=True)
    if group is None or group.status is not GroupStatus.PENDING:
        return 0
    orders = group_orders(uow, group)
    group.expire(orders, now)
    for member in orders:
        settle_new_refunds(member, ctx.gateway, group.expires_at)
    return 1


def _apply_case(ctx: Context, uow: UnitOfWork, row: Any, now: datetime) -> int:
    """Apply the row's timer after every earlier due timer of its case; returns how many fired."""
    order = uow.tracker.get_order(row.order_id, lock=True)
    if order is None:
        return 0
    case = order.case(row.subject_id)
    policy = order_policy(ctx, uow.conn, order)  # T0: the policy version the order was paid under
    fired = 0
    while True:
        due = [d for d in case.timers() if d.due_at <= row.due_at and d.due_at <= now]
        if not due:
            return fired
        timer = min(due, key=lambda d: (d.due_at, d.action != dcases.Auto.REMIND_MERCHANT))
        if not dcases.fire(order, case.id, timer.action, timer.stage, now, policy, due_at=timer.due_at):
            return fired
        address_approved_returns(uow.conn, order)  # M1: a return approved on the shop's behalf goes to its default
        settle_new_refunds(order, ctx.gateway, timer.due_at)
        fired += 1


#: Who applies a row, per ``timers.subject``: one explicit table (no import by name).
HANDLERS: dict[str, Applier] = {
    "case": _apply_case,
    "group": _apply_group,
    "complaint": complaints.apply_timer,  # K2: a missed limit is flagged
    "withdrawal": deposits.apply_timer,  # D1: the hold is over
}


@dataclass
class Pass:
    """What one pass over due timers did: actions applied, and actions that failed (F2)."""

    fired: int = 0
    failed: list[Failure] = field(default_factory=list)


class _Isolate(Exception):
    """Something failed in a batch applied in one go: apply it again, each aggregate on its own."""


def _is_conflict(exc: BaseException) -> bool:
    """A concurrent change or a transient database error: the whole transaction is retried (not an F2 failure)."""
    return isinstance(exc, ConcurrentUpdate) or (isinstance(exc, DBAPIError) and _retryable(exc))


def describe(exc: BaseException) -> str:
    """``last_error``: the rule and the message of a typed refusal; only the class of anything unexpected."""
    if isinstance(exc, DomainError):
        text = str(exc)
        return f"{exc.rule}: {text.split('] ', 1)[1] if text.startswith('[') and '] ' in text else text}"
    return type(exc).__name__


def _unit_key(row: Any) -> tuple[str, str]:
    """The aggregate a row changes, as (id it is locked by, subject): a case's rows go with its order."""
    return (row.order_id, "order") if row.subject == "case" else (row.subject_id, row.subject)


def _unit_order(key: tuple[str, str]) -> tuple[bool, tuple[str, str]]:
    """Aggregates are applied (and locked) in id order; deposit withdrawals last: D1 pays one only if no case was
    open at its due instant, which the batch's case actions, due earlier or later, decide first (in due order)."""
    return key[1] == "withdrawal", key


def _live(row: Any) -> bool:
    return row.subject != "case" or (row.case_stage is not None and row.case_stage == row.stage)


def _apply_rows(ctx: Context, uow: UnitOfWork, rows: list[Any], now: datetime, progress: list[int]) -> int:
    fired = 0
    for i, row in enumerate(rows):
        progress[0] = i
        fired += HANDLERS[row.subject](ctx, uow, row, now)
    return fired


def _touched(uow: UnitOfWork, rows: list[Any], before: tuple[set[str], set[str]]) -> tuple[set[str], set[str]]:
    """Every aggregate of the identity map a unit's rows may have changed: its order or group (with the group's
    members), those loaded meanwhile, and those changed (every other one was written clean before the unit)."""
    orders, groups = uow.tracker.dirty()
    orders |= set(uow.tracker.orders) - before[0]
    groups |= set(uow.tracker.groups) - before[1]
    for row in rows:
        if row.subject == "case":
            orders.add(row.order_id)
        elif row.subject == "group":
            groups.add(row.subject_id)
            tracked = uow.tracker.groups.get(row.subject_id)
            if tracked is not None:
                orders |= set(tracked[0].member_ids)
    return orders, groups


def _apply_isolated(ctx: Context, uow: UnitOfWork, rows: list[Any], now: datetime,
                    failed: list[Failure], postponed: list[tuple[list[int], datetime, str]]) -> tuple[int, list[Any]]:
    """Apply one aggregate's rows (due order) in a SAVEPOINT, its changes written inside it. On a failure: roll
    back, forget its objects, record the failing row, let its later rows wait, and apply the earlier ones again.
    Returns (actions fired, rows applied)."""
    pending = rows
    while pending:
        before = (set(uow.tracker.orders), set(uow.tracker.groups))
        progress = [0]
        savepoint = uow.conn.begin_nested()
        try:
            fired = _apply_rows(ctx, uow, pending, now, progress)
            uow.tracker.flush()
            savepoint.commit()
            return fired, pending
        except Exception as exc:
            if savepoint.is_active:
                savepoint.rollback()
            if _is_conflict(exc):
                raise
            orders, groups = _touched(uow, pending, before)
            uow.tracker.forget(orders, groups)
            bad = pending[progress[0]]
            failure = store_timers.failure(bad, describe(exc), now)
            failed.append(failure)
            later = [r.id for r in pending[progress[0] + 1:]]
            if later:
                until = failure.next_try_at or now + store_timers.BACKOFF[-1]
                postponed.append((later, until, f"waits for {bad.action} (timer {bad.id}), which failed"))
            pending = pending[:progress[0]]
    return 0, []


def _batch(ctx: Context, uow: UnitOfWork, now: datetime, limit: int, *, isolate: bool) -> tuple[int, Pass]:
    rows = repo.due_timers(uow.conn, now, limit, skip_locked=True)
    if not rows:
        return 0, Pass()
    # A case's other due timers come along (M1: its reminders and its deadline), so that a backlog loads and
    # writes each aggregate once rather than once per timer; they are applied in due order below, as they
    # would be by later batches. Rows another worker holds are left to it (SKIP LOCKED on PostgreSQL).
    rows += repo.due_case_timers(uow.conn, now, (r.subject_id for r in rows if r.subject == "case"),
                                 (r.id for r in rows), skip_locked=True)
    live = [r for r in rows if _live(r)]
    uow.tracker.load_orders((r.order_id for r in live if r.subject == "case"), lock=True)
    units: dict[tuple[str, str], list[Any]] = {}
    for row in sorted(live, key=lambda r: (r.due_at, r.id)):
        units.setdefault(_unit_key(row), []).append(row)
    failed: list[Failure] = []
    postponed: list[tuple[list[int], datetime, str]] = []
    keep: set[int] = set()
    fired = 0
    for key in sorted(units, key=_unit_order):
        unit = units[key]
        if not isolate:
            try:
                fired += _apply_rows(ctx, uow, unit, now, [0])
            except Exception as exc:
                if _is_conflict(exc):
                    raise
                raise _Isolate from exc
            continue
        n, applied = _apply_isolated(ctx, uow, unit, now, failed, postponed)
        fired += n
        done = {r.id for r in applied}
        keep |= {r.id for r in unit if r.id not in done}
    if not isolate:
        try:
            uow.tracker.flush()
        except Exception as exc:
            if _is_conflict(exc):
                raise
            raise _Isolate from exc
    repo.delete_timers(uow.conn, [r.id for r in rows if r.id not in keep])
    store_timers.record_failures(uow.conn, failed, now)
    for ids, until, reason in postponed:
        store_timers.postpone(uow.conn, ids, until, reason)
    return len(rows), Pass(fired, failed)


def apply_batch(ctx: Context, now: datetime, limit: int = BATCH, *, out: Pass | None = None) -> tuple[int, int]:
    """Apply up to ``limit`` due timers, the earliest first, in one transaction, with every other due timer of their
    cases. Returns (rows taken, actions that changed something); failures (F2) are added to ``out``."""
    for isolate in (False, True):
        try:
            taken, result = run(ctx, lambda uow: _batch(ctx, uow, now, limit, isolate=isolate))  # noqa: B023
        except _Isolate:
            continue
        if out is not None:
            out.fired += result.fired
            out.failed += result.failed
        return taken, result.fired
    raise AssertionError("an isolated batch does not ask for isolation")


def apply_due(ctx: Context, now: datetime, *, limit: int | None = None, batch: int = BATCH,
              out: Pass | None = None) -> int:
    """Apply every automatic action due at ``now``; returns how many changed something. Actions that failed
    (kept for a retry, or parked) are added to ``out``; they never stop the others (F2)."""
    fired = taken_total = 0
    while limit is None or taken_total < limit:
        taken, changed = apply_batch(ctx, now, batch if limit is None else min(batch, limit - taken_total), out=out)
        if taken == 0:
            break
        taken_total += taken
        fired += changed
    return fired


def advance_clock(ctx: Context, seconds: int) -> tuple[datetime, Pass]:
    """API.md manual clock: move it and apply everything that fell due before answering (F2: what fails is in
    the pass's ``failed``, and everything else is applied)."""

    def cmd(uow: UnitOfWork) -> datetime:
        new = uow.now + timedelta(seconds=seconds)
        ctx.clock.set(uow.conn, new)
        return new

    new_now = run(ctx, cmd)
    done = Pass()
    apply_due(ctx, new_now, out=done)
    return new_now, done


# --- the platform's view of parked actions (F2) ------------------------------------------------------------
def stuck_view(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id, "subject": row.subject, "subject_id": row.subject_id, "order_id": row.order_id,
        "case_id": row.subject_id if row.subject == "case" else None, "merchant_id": row.merchant_id,
        "case_status": row.case_status, "action": row.action, "rule": row.rule, "due_at": row.due_at.isoformat(),
        "attempts": row.attempts, "error": row.last_error, "stuck_at": row.stuck_at.isoformat()}
    return out


def list_stuck(ctx: Context, who: Principal, *, cursor: int | None = None, limit: int = 50) -> dict[str, Any]:
    """F2: automatic actions parked after their last try, for the platform (oldest first), with how many there are."""
    who.require("platform")

    def q(uow: UnitOfWork) -> dict[str, Any]:
        rows = store_timers.stuck_timers(uow.conn, limit=limit, after=cursor)
        return {"items": [stuck_view(r) for r in rows[:limit]],
                "next_cursor": str(rows[limit - 1].id) if len(rows) > limit else None,
                "total": store_timers.count_stuck(uow.conn)}

    return read(ctx, q)


def retry_stuck(ctx: Context, who: Principal, timer_id: int) -> dict[str, Any]:
    """F2: the platform sends a parked action back to the worker; it is tried on the next pass."""
    who.require("platform")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        if not store_timers.unpark(uow.conn, timer_id):
            raise NotFound("stuck automatic action", str(timer_id))
        return {"id": timer_id, "parked": False, "next_try_at": None}

    return run(ctx, cmd)
