"""What-if replay jobs (issue 15): the platform asks for a draft's replay over a period, the worker runs it in the
background (:func:`run_next`, a thread of ``aftersales worker`` / ``serve``) through :func:`run_replay`, writing its
progress and then its report into the job's row — the only row a replay writes.

The worker, not a thread of the request: a replay of a long period takes minutes, must survive a restart of the web
process, and must not take a request thread. Any worker process may take a queued job (a conditional UPDATE lets one
win); a job whose worker died (no heartbeat for :data:`STALE_SECONDS`) is taken again — safe, since the replay reads
one snapshot and writes nothing else.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from aftersales.domain import policy as dpolicy
from aftersales.domain.timeutil import period
from aftersales.store import replay as store
from aftersales.store import terms as terms_store

from .context import Context, Principal, UnitOfWork, read, run
from .errors import Invalid, NotFound
from .publishing import drafted_categories
from .replay import csv_text, run_replay
from .subjects import new_id

#: A running job whose heartbeat (renewed with every batch of orders) is older than this is taken again.
STALE_SECONDS = 600
#: Differing cases kept with both timelines in a job's report.
SAMPLE = 20

log = logging.getLogger("aftersales.replay")


def _real_now() -> datetime:
    """Heartbeats are the real clock's (a manual test clock does not move while a worker runs)."""
    return datetime.now(UTC)


def _view(row: Any) -> dict[str, Any]:
    def at(v: datetime | None) -> str | None:
        return v.isoformat() if v else None

    return {"id": row.id, "draft_id": row.draft_id, "from": row.start.isoformat(), "to": row.end.isoformat(),
            "status": row.status, "progress": {"done": row.done, "total": row.total}, "workers": row.workers,
            "created_at": row.created_at.isoformat(), "created_by": row.created_by, "started_at": at(row.started_at),
            "finished_at": at(row.finished_at), "error": row.error, "report": row.report}


def _job(uow: UnitOfWork, job_id: str, *, with_rows: bool = False) -> Any:
    row = store.job(uow.conn, job_id, with_rows=with_rows)
    if row is None:
        raise NotFound("replay", job_id)
    return row


#: Most worker processes one replay may ask for.
MAX_WORKERS = 16


def start(ctx: Context, who: Principal, draft_id: str, start: str, end: str, *, workers: int = 1,
          by: str | None = None) -> dict[str, Any]:
    """Queue a replay of the draft over [start, end) (dates are local midnights in the platform zone, T0), to be run by
    ``workers`` processes."""
    who.require("platform")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise Invalid("workers must be a whole number from 1 to {most}", most=MAX_WORKERS)
    begin, finish = period(start, end, ctx.policy.timezone)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        if terms_store.policy_draft(uow.conn, draft_id) is None:
            raise NotFound("policy draft", draft_id)
        jid = new_id("rj")
        store.insert_job(uow.conn, {"id": jid, "draft_id": draft_id, "start": begin, "end": finish, "status": "queued",
                                    "done": 0, "workers": workers, "created_at": uow.now, "created_by": by or who.key})
        return _view(_job(uow, jid))

    return run(ctx, cmd)


def get(ctx: Context, who: Principal, job_id: str) -> dict[str, Any]:
    who.require("platform")
    return read(ctx, lambda uow: _view(_job(uow, job_id)))


def report_csv(ctx: Context, who: Principal, job_id: str) -> tuple[str, str]:
    """The job's differences, one line per difference, in the columns of ``aftersales policy replay --csv``; the
    header alone until the job is done."""
    who.require("platform")
    row = read(ctx, lambda uow: _job(uow, job_id, with_rows=True))
    return csv_text(row.rows or []), f"replay-{row.id}.csv"


def run_job(ctx: Context, job_id: str) -> None:
    """Run a claimed job to its end: progress with every batch, then the report and its rows (or the error)."""
    row = read(ctx, lambda uow: _job(uow, job_id))
    draft = read(ctx, lambda uow: terms_store.policy_draft(uow.conn, row.draft_id))

    def write(values: dict[str, Any]) -> None:
        run(ctx, lambda uow: store.update_job(uow.conn, job_id, values))

    def progress(done: int, total: int) -> None:
        write({"done": done, "total": total, "heartbeat_at": _real_now()})

    try:
        report = run_replay(ctx, dpolicy.from_parameters(draft.parameters) if draft.parameters is not None else None,
                            row.start, row.end, terms=drafted_categories(draft.categories), sample=SAMPLE, progress=progress,
                            workers=row.workers)
    except Exception as exc:
        log.exception("replay %s failed", job_id)
        error = str(exc)[:2000] or type(exc).__name__
        run(ctx, lambda uow: store.update_job(uow.conn, job_id, {"status": "failed", "error": error,
                                                                 "finished_at": uow.now}))
        return
    run(ctx, lambda uow: store.update_job(uow.conn, job_id, {
        "status": "done", "report": report.as_dict(), "rows": report.rows, "finished_at": uow.now,
        "heartbeat_at": _real_now()}))


def run_next(ctx: Context) -> int:
    """Take the oldest waiting job, if any, and run it (the worker's step). 1 when a job ran, else 0."""
    def claim(uow: UnitOfWork) -> str | None:
        now = _real_now()
        job = store.claimable_job(uow.conn, now - timedelta(seconds=STALE_SECONDS))
        if job is None or not store.claim_job(uow.conn, job.id, job.status, job.heartbeat_at, uow.now, now):
            return None
        return str(job.id)

    job_id = run(ctx, claim)
    if job_id is None:
        return 0
    run_job(ctx, job_id)
    return 1
