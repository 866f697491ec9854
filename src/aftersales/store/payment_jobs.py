"""Rows of the F1 payment outbox: jobs that ask the external gateway to pay a refund, until it confirms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from . import tables as t


def claim(conn: Connection, now: datetime, limit: int, lease_until: datetime) -> list[Any]:
    """Up to ``limit`` due jobs (refund key, order id, amount, attempts), earliest first, leased until ``lease_until``
    (a worker that dies mid-call leaves the job to be retried once the lease runs out). On PostgreSQL jobs another
    worker holds are skipped."""
    j = t.payment_jobs
    stmt = (select(j.c.refund_key, j.c.order_id, t.refunds.c.amount_fen, j.c.attempts)
            .join(t.refunds, t.refunds.c.key == j.c.refund_key)
            .where(j.c.next_attempt_at <= now).order_by(j.c.next_attempt_at).limit(limit))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=j, skip_locked=True)
    rows = list(conn.execute(stmt).all())
    if rows:
        conn.execute(update(j).where(j.c.refund_key.in_([r.refund_key for r in rows]))
                     .values(attempts=j.c.attempts + 1, next_attempt_at=lease_until))
    return rows


def retry_later(conn: Connection, refund_key: str, at: datetime, error: str | None) -> None:
    j = t.payment_jobs
    conn.execute(update(j).where(j.c.refund_key == refund_key).values(next_attempt_at=at, last_error=error))


def done(conn: Connection, refund_key: str) -> None:
    conn.execute(delete(t.payment_jobs).where(t.payment_jobs.c.refund_key == refund_key))
