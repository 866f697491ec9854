"""The what-if replay split over processes (issue 15: "runs in minutes over a million cases").

:func:`run_parallel` splits the orders to replay (in id order) into contiguous ranges, one per worker process, and
merges their reports in range order: counts add up, the differences' rows and the samples come in the order one
process would have produced them, so the report is that of :func:`aftersales.service.replay.run_replay` with one
process (its ``seconds`` aside). The replay is CPU-bound pure Python, so processes, not threads.

One state of the database: on PostgreSQL the parent's snapshot is exported (``pg_export_snapshot``) and every worker
reads through it while the parent's transaction stays open. On SQLite each worker opens its own read transaction when
it starts (a second or so after the parent's): the orders to replay and the clock are the parent's, but a change
written to those orders in between would be seen — run a replay over a quiet database, or with one process, when
that matters.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queues
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aftersales.domain.catalog import Category
from aftersales.domain.policy import Policy, from_parameters
from aftersales.store import replay as store
from aftersales.store.db import make_engine

from .context import Clock, Context
from .replay import Progress, ReplayReport, merge, new_report, replay_range

#: How long the parent waits for word from its workers before it checks that they are alive.
POLL_SECONDS = 5.0


@dataclass(frozen=True)
class _Range:
    """What one worker needs (sent to a fresh process: plain, picklable values)."""

    index: int
    url: str
    exported: str | None
    search_path: str | None
    policy: dict[str, Any]
    file_policy: dict[str, Any]
    candidate: dict[str, Any] | None
    terms: dict[str, Category] | None
    start: datetime
    end: datetime
    until: datetime
    identity: bool
    sample: int
    batch: int
    order_ids: list[str]


def _processes() -> Any:
    """Where worker processes come from: a fork server that has imported this module once (Linux: a worker starts in
    milliseconds, and no lock or thread of this process is carried over), else a fresh interpreter each."""
    if "forkserver" in mp.get_all_start_methods():
        forks = mp.get_context("forkserver")
        forks.set_forkserver_preload([__name__])
        return forks
    return mp.get_context("spawn")


def ranges(order_ids: list[str], workers: int, batch: int) -> list[list[str]]:
    """``order_ids`` in at most ``workers`` contiguous ranges of nearly equal size (none smaller than a batch)."""
    n = max(1, min(workers, -(-len(order_ids) // batch)))
    size = -(-len(order_ids) // n)
    return [order_ids[i:i + size] for i in range(0, len(order_ids), size)]


def _work(job: _Range, out: Any) -> None:
    """A worker process: replay its range through its own connection to the same snapshot, send progress and report."""
    cpu = time.process_time()
    engine = make_engine(job.url, pool_size=1)
    try:
        ctx = Context(engine=engine, policy=from_parameters(job.policy), clock=Clock(False),
                      file_policy=from_parameters(job.file_policy))
        candidate = from_parameters(job.candidate) if job.candidate is not None else None
        report = new_report(job.start, job.end, job.until, candidate, job.terms, job.identity)
        with store.snapshot(engine, exported=job.exported, search_path=job.search_path) as conn:
            replay_range(ctx, conn, report, job.order_ids, candidate, job.terms, sample=job.sample, batch=job.batch,
                         progress=lambda done: out.put(("progress", job.index, done)))
        report.cpu_seconds = [time.process_time() - cpu]
        out.put(("done", job.index, report))
    except BaseException as exc:  # reported to the parent, which fails the whole replay
        out.put(("failed", job.index, f"{type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()


def run_parallel(ctx: Context, conn: Any, report: ReplayReport, order_ids: list[str], policy: Policy | None,
                 terms: Mapping[str, Category] | None, *, sample: int, progress: Progress | None, batch: int,
                 workers: int) -> ReplayReport:
    """Replay ``order_ids`` in ``workers`` processes reading the snapshot of ``conn`` (kept open meanwhile) and merge
    their reports into ``report``. A worker that fails fails the replay (RuntimeError naming it)."""
    url = ctx.engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise RuntimeError("a replay in several processes needs a database file or server, not an in-memory database")
    exported, search_path = store.export_snapshot(conn)
    assert ctx.file_policy is not None
    parts = ranges(order_ids, workers, batch)
    jobs = [_Range(i, url.render_as_string(hide_password=False), exported, search_path, ctx.policy.as_dict(),
                   ctx.file_policy.as_dict(), policy.as_dict() if policy is not None else None,
                   dict(terms) if terms else None, report.start, report.end, report.until, report.identity, sample,
                   batch, ids) for i, ids in enumerate(parts)]
    spawn = _processes()
    out = spawn.Queue()
    procs = [spawn.Process(target=_work, args=(job, out), name=f"aftersales-replay-{job.index}", daemon=True)
             for job in jobs]
    for p in procs:
        p.start()
    done = [0] * len(jobs)
    results: list[ReplayReport | None] = [None] * len(jobs)
    try:
        while any(r is None for r in results):
            try:
                kind, index, value = out.get(timeout=POLL_SECONDS)
            except queues.Empty:
                dead = [i for i, p in enumerate(procs) if results[i] is None and p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"replay worker {dead[0]} died (exit code {procs[dead[0]].exitcode})") from None
                continue
            if kind == "progress":
                done[index] = value
                if progress is not None:
                    progress(sum(done), len(order_ids))
            elif kind == "done":
                results[index] = value
            else:
                raise RuntimeError(f"replay worker {index} failed: {value}")
    finally:
        for p in procs:
            if p.is_alive() and results[procs.index(p)] is None:
                p.terminate()
            p.join(timeout=30)
    for part in results:
        assert part is not None
        merge(report, part, sample)
    return report
