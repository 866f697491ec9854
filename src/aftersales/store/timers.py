"""Durable deadlines' rows (``timers``): arming them, and what F2 keeps of an action that could not apply.

Every writer of a timer row goes through :func:`arm_timers`. A row the worker could not apply is kept with its
tries (``attempts``), its ``last_error`` and when to try again (``next_try_at``, exponential backoff); after
:data:`MAX_ATTEMPTS` tries it is parked (``stuck_at``): the worker no longer claims it (store/repositories.py
``_due``) and the platform lists it (:func:`stuck_timers`) and may send it back for one more try (:func:`unpark`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from . import tables as t
from .bulk import insert_of
from .driver import Pipeline, executemany

#: F2: tries before an automatic action is parked for the platform.
MAX_ATTEMPTS = 5
#: Wait before the 1st, 2nd, 3rd … retry; the last one repeats.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
#: ``last_error`` is cut to the column's size.
MAX_ERROR = 500

_FIELDS = ("subject", "subject_id", "order_id", "action", "stage", "rule", "due_at")


def arm_timers(conn: Connection, rows: Iterable[Mapping[str, Any]], q: Pipeline | None = None) -> None:
    """Insert pending automatic actions, one row each: ``subject`` (case, group, complaint, withdrawal),
    ``subject_id``, ``order_id`` (cases only), ``action``, ``stage`` (a row of another stage is stale), ``rule``,
    ``due_at``. The one place timer rows are written (in the transaction that writes the state that starts them)."""
    values = [{k: r.get(k) for k in _FIELDS} for r in rows]
    if not values:
        return
    for v in values:
        if v["subject"] is None or v["subject_id"] is None or v["action"] is None or v["rule"] is None \
                or v["due_at"] is None or v["stage"] is None:
            raise ValueError(f"a timer row needs {', '.join(f for f in _FIELDS if f != 'order_id')}: {v}")
    if q is not None:  # the unit of work's flush, in one round trip (store/driver.py pipeline)
        q.insert(t.timers, values)
    else:
        executemany(conn, insert_of(t.timers), values)


def backoff(attempts: int) -> timedelta:
    """How long a row that has failed ``attempts`` times (≥ 1) waits before its next try."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


@dataclass(frozen=True, slots=True)
class Failure:
    """An automatic action that could not apply in this pass (F2): kept for a retry, or parked."""

    id: int
    subject: str
    subject_id: str
    order_id: str | None
    action: str
    rule: str
    error: str
    attempts: int
    next_try_at: datetime | None
    parked: bool

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "subject": self.subject, "subject_id": self.subject_id,
                               "action": self.action, "rule": self.rule, "error": self.error,
                               "attempts": self.attempts, "parked": self.parked,
                               "next_try_at": self.next_try_at.isoformat() if self.next_try_at else None}
        if self.subject == "case":
            out["case_id"] = self.subject_id
        return out


def failure(row: Any, error: str, now: datetime) -> Failure:
    """What becomes of ``row`` (a claimed timer) after one more failed try at ``now``."""
    attempts = int(row.attempts or 0) + 1
    parked = attempts >= MAX_ATTEMPTS
    return Failure(id=row.id, subject=row.subject, subject_id=row.subject_id, order_id=row.order_id, action=row.action,
                   rule=row.rule, error=error[:MAX_ERROR], attempts=attempts,
                   next_try_at=None if parked else now + backoff(attempts), parked=parked)


def record_failures(conn: Connection, failures: list[Failure], now: datetime) -> None:
    """Keep the failed rows (one statement): their tries, error, next try, or parked."""
    if not failures:
        return
    conn.execute(update(t.timers).where(t.timers.c.id == bindparam("b_id")).values(
        attempts=bindparam("v_attempts"), last_error=bindparam("v_error"), next_try_at=bindparam("v_next"),
        stuck_at=bindparam("v_stuck")),
        [{"b_id": f.id, "v_attempts": f.attempts, "v_error": f.error, "v_next": f.next_try_at,
          "v_stuck": now if f.parked else None} for f in failures])


def postpone(conn: Connection, ids: list[int], until: datetime, reason: str) -> None:
    """Rows that wait behind a failed earlier action of the same aggregate (due order holds): tried with it."""
    if ids:
        conn.execute(update(t.timers).where(t.timers.c.id.in_(ids))
                     .values(next_try_at=until, last_error=reason[:MAX_ERROR]))


def _live() -> Any:
    """Parked rows still worth a look: a case row whose case has moved to another stage is stale (dropped when
    claimed) and no longer listed."""
    c = t.cases.c
    return (t.timers.c.stuck_at.is_not(None)) & ((t.timers.c.subject != "case") | (c.stage == t.timers.c.stage))


def stuck_timers(conn: Connection, *, limit: int, after: int | None = None) -> list[Any]:
    """Parked automatic actions, oldest first (keyset on id), with their case's status and merchant when a case's."""
    c = t.cases.c
    stmt = (select(t.timers, c.status.label("case_status"), c.merchant_id.label("merchant_id"))
            .outerjoin(t.cases, (t.timers.c.subject == "case") & (c.id == t.timers.c.subject_id))
            .where(_live()))
    if after is not None:
        stmt = stmt.where(t.timers.c.id > after)
    return list(conn.execute(stmt.order_by(t.timers.c.id).limit(limit + 1)).all())


def count_stuck(conn: Connection) -> int:
    """How many automatic actions are parked (the platform's F2 metric)."""
    stmt = (select(func.count()).select_from(t.timers)
            .outerjoin(t.cases, (t.timers.c.subject == "case") & (t.cases.c.id == t.timers.c.subject_id))
            .where(_live()))
    return int(conn.execute(stmt).scalar_one())


def unpark(conn: Connection, timer_id: int) -> bool:
    """Send a parked row back to the worker for its next pass (its tries are kept: one more failure parks it
    again). False when no such parked row exists."""
    res = conn.execute(update(t.timers).where(t.timers.c.id == timer_id, t.timers.c.stuck_at.is_not(None))
                       .values(stuck_at=None, next_try_at=None))
    return bool(res.rowcount == 1)
