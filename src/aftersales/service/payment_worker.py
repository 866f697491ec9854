"""The payment worker (F1): sends due payment jobs to an external gateway and settles what it confirms."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

from sqlalchemy import delete, select, update

from aftersales.store import tables as t

from .context import Context, UnitOfWork, run
from .payments import GatewayError, backoff

LEASE = timedelta(seconds=60)


class Job(NamedTuple):
    key: str
    order_id: str
    amount_fen: int
    attempts: int


def _claim(ctx: Context, limit: int) -> list[Job]:
    def cmd(uow: UnitOfWork) -> list[Job]:
        j = t.payment_jobs
        stmt = (select(j.c.refund_key, j.c.order_id, t.refunds.c.amount_fen, j.c.attempts)
                .join(t.refunds, t.refunds.c.key == j.c.refund_key)
                .where(j.c.next_attempt_at <= uow.now).order_by(j.c.next_attempt_at).limit(limit))
        if uow.conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=j, skip_locked=True)
        rows = [Job(*r) for r in uow.conn.execute(stmt).all()]
        if rows:
            # A lease: a worker that dies mid-call leaves the job to be retried once the lease runs out.
            uow.conn.execute(update(j).where(j.c.refund_key.in_([r.key for r in rows]))
                             .values(attempts=j.c.attempts + 1, next_attempt_at=uow.now + LEASE))
        return rows

    return run(ctx, cmd)


def _finish(ctx: Context, job: Job, confirmed: bool, error: str | None) -> bool:
    def cmd(uow: UnitOfWork) -> bool:
        j = t.payment_jobs
        if not confirmed:
            uow.conn.execute(update(j).where(j.c.refund_key == job.key)
                             .values(next_attempt_at=uow.now + backoff(job.attempts + 1), last_error=error))
            return False
        order = uow.tracker.get_order(job.order_id, lock=True)
        assert order is not None
        done = order.settle_refund(job.key, uow.now)  # False for a second confirmation: nothing is paid twice
        uow.conn.execute(delete(j).where(j.c.refund_key == job.key))
        return done

    return run(ctx, cmd)


def process_due(ctx: Context, *, limit: int = 100) -> int:
    """Submit every due payment job; returns how many refunds settled."""
    settled = 0
    while jobs := _claim(ctx, limit):
        for job in jobs:
            try:
                confirmed = ctx.gateway.submit(job.key, job.amount_fen, job.order_id)
                error = None if confirmed else "not confirmed yet"
            except GatewayError as exc:
                confirmed, error = False, str(exc)[:500] or type(exc).__name__
            settled += int(_finish(ctx, job, confirmed, error))
    return settled
