"""The payment worker (F1): sends due payment jobs to an external gateway and settles what it confirms."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

from aftersales.store import payment_jobs as store

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
        # A lease: a worker that dies mid-call leaves the job to be retried once the lease runs out.
        return [Job(*r) for r in store.claim(uow.conn, uow.now, limit, uow.now + LEASE)]

    return run(ctx, cmd)


def _finish(ctx: Context, job: Job, confirmed: bool, error: str | None) -> bool:
    def cmd(uow: UnitOfWork) -> bool:
        if not confirmed:
            store.retry_later(uow.conn, job.key, uow.now + backoff(job.attempts + 1), error)
            return False
        order = uow.tracker.get_order(job.order_id, lock=True)
        assert order is not None
        done = order.settle_refund(job.key, uow.now)  # False for a second confirmation: nothing is paid twice
        store.done(uow.conn, job.key)
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
