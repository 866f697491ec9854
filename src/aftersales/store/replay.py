"""What the what-if replay reads (issue 15) and the refused openings it needs (E1–E9).

Reads only: the replay never writes a live table. :func:`record_refused_opening` is written by the service that opens
cases, in its own transaction, when eligibility refuses an opening.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text, union, update

from . import tables as t

_R = t.refused_openings


def record_refused_opening(conn: Connection, *, order_id: str, merchant_id: str, actor: str, case_type: str, reason: str,
                           items: dict[str, int] | None, refund_fen: int | None, buyer_consent: bool, rule: str,
                           at: datetime) -> None:
    """Record a refused opening, placed after the order's events stored so far (its place in the history)."""
    before = conn.execute(select(func.count()).select_from(t.events).where(t.events.c.order_id == order_id)).scalar_one()
    conn.execute(insert(_R).values(order_id=order_id, merchant_id=merchant_id, actor=actor, case_type=case_type,
                                   reason=reason, items=items, refund_fen=refund_fen, buyer_consent=buyer_consent,
                                   rule=rule, at=at, events_before=before))


def order_ids_in_window(conn: Connection, start: datetime, end: datetime) -> list[str]:
    """Orders with something to replay in [start, end): paid, a case opened, or an opening refused in the window."""
    q = union(
        select(t.orders.c.id.label("id")).where(t.orders.c.paid_at >= start, t.orders.c.paid_at < end),
        select(t.cases.c.order_id.label("id")).where(t.cases.c.opened_at >= start, t.cases.c.opened_at < end),
        select(_R.c.order_id.label("id")).where(_R.c.at >= start, _R.c.at < end),
    ).subquery()
    return [r[0] for r in conn.execute(select(q.c.id).order_by(q.c.id)).all()]


def order_events(conn: Connection, order_ids: Sequence[str]) -> dict[str, list[Any]]:
    """Every event of the orders, in the order they were recorded."""
    out: dict[str, list[Any]] = {oid: [] for oid in order_ids}
    rows = conn.execute(select(t.events).where(t.events.c.order_id.in_(list(order_ids))).order_by(t.events.c.id)).all()
    for r in rows:
        out[r.order_id].append(r)
    return out


def group_events(conn: Connection, group_ids: Iterable[str]) -> dict[str, list[Any]]:
    """Every event of the groups recorded on the group alone (formation, failure), in recorded order."""
    ids = sorted(set(group_ids))
    out: dict[str, list[Any]] = {gid: [] for gid in ids}
    if not ids:
        return out
    rows = conn.execute(select(t.events).where(t.events.c.group_id.in_(ids), t.events.c.order_id.is_(None))
                        .order_by(t.events.c.id)).all()
    for r in rows:
        out[r.group_id].append(r)
    return out


def refused_openings(conn: Connection, order_ids: Sequence[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {oid: [] for oid in order_ids}
    rows = conn.execute(select(_R).where(_R.c.order_id.in_(list(order_ids))).order_by(_R.c.id)).all()
    for r in rows:
        out[r.order_id].append(r)
    return out


def refused_opening_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(_R)).scalar_one())


@contextmanager
def snapshot(engine: Engine, *, exported: str | None = None, search_path: str | None = None) -> Iterator[Connection]:
    """One read-only transaction seeing one state of the database throughout (PostgreSQL: REPEATABLE READ READ ONLY;
    SQLite: a read transaction keeps its snapshot, and takes no write lock). Rolled back at the end: nothing is ever written.

    PostgreSQL: ``exported`` (from :func:`export_snapshot` in another process's snapshot, still open) makes this
    transaction see exactly that one state; ``search_path`` is that process's (its schema)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        else:  # a deferred BEGIN (db.py): a reader in WAL, never the write lock that would hold every writer back
            conn = conn.execution_options(readonly=True)
        with conn.begin() as tx:
            try:
                if conn.dialect.name == "postgresql" and exported is not None:
                    # Before any query of the transaction (PostgreSQL's rule); the id is PostgreSQL's own text.
                    conn.execute(text("SET TRANSACTION SNAPSHOT '" + exported.replace("'", "''") + "'"))
                if conn.dialect.name == "postgresql" and search_path is not None:
                    conn.execute(text("SELECT set_config('search_path', :p, true)"), {"p": search_path})
                yield conn
            finally:
                tx.rollback()


def export_snapshot(conn: Connection) -> tuple[str | None, str | None]:
    """PostgreSQL: the id of this snapshot (other processes may share it while this transaction stays open) and the
    search path; SQLite: (None, None) — each process's read transaction takes its own snapshot."""
    if conn.dialect.name != "postgresql":
        return None, None
    sid = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
    return str(sid), str(conn.execute(text("SELECT current_setting('search_path')")).scalar_one())


# --- replay jobs (issue 15): the only rows a replay writes -----------------------------------------------------------
_J = t.replay_jobs


def insert_job(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(_J).values(**row))


def job(conn: Connection, job_id: str, *, with_rows: bool = False) -> Any:
    cols = [c for c in _J.c if with_rows or c.name != "rows"]
    return conn.execute(select(*cols).where(_J.c.id == job_id)).first()


def claimable_job(conn: Connection, stale_before: datetime) -> Any:
    """The oldest job waiting for a worker: queued, or running with a heartbeat older than ``stale_before`` (its
    worker died; the replay writes nothing else, so running it again is safe)."""
    return conn.execute(select(_J.c.id, _J.c.status, _J.c.heartbeat_at)
                        .where((_J.c.status == "queued") | ((_J.c.status == "running") & (_J.c.heartbeat_at < stale_before)))
                        .order_by(_J.c.created_at, _J.c.id).limit(1)).first()


def claim_job(conn: Connection, job_id: str, status: str, heartbeat_at: datetime | None, started_at: datetime,
              now: datetime) -> bool:
    """Take the job if it is still as read (one worker wins a race: the others' conditional UPDATE matches nothing)."""
    seen = _J.c.heartbeat_at.is_(None) if heartbeat_at is None else _J.c.heartbeat_at == heartbeat_at
    done = conn.execute(update(_J).where(_J.c.id == job_id, _J.c.status == status, seen).values(
        status="running", done=0, total=None, started_at=started_at, heartbeat_at=now))
    return done.rowcount == 1


def update_job(conn: Connection, job_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(_J).where(_J.c.id == job_id).values(**values))
