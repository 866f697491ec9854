"""B2 / issue 4: how fast the worker applies due deadlines, from a large backlog, and its lag under load.

Not a test. Run: ``.venv/bin/python bench/deadlines.py --backlog 1000000`` (``make bench`` runs it with the others).

Backlog phase: ``--backlog`` due timers (three per case: the M1 reminders at 36 h and 46 h and the automatic
approval at 48 h, on refund_only cases of unshipped orders, so each approval also issues and settles a
refund) are applied by one worker (``--workers N``: N processes side by side, PostgreSQL only), ``--batch``
timers claimed per transaction, through the worker's own ``apply_batch``. The backlog is built from one order and
case made by the domain and cloned with new ids (building 1,000,000 through the domain one by one would take longer
than the benchmark). Reported: deadlines applied per second (rows taken / s, and actions that changed something
/ s), the worker processes' CPU time per timer (steadier than the rate on a shared machine; the database server's
CPU is not in it), and each worker's resident memory sampled every 10 % of the way — flat when it does not grow
with the backlog.

Steady phase: with the real clock, a producer adds cases whose deadlines fall due continuously at
``--rate`` per second while a worker polls every 0.2 s; the lag is (time applied − time due) per action.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from queue import Empty
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from aftersales.domain import policy as policy_mod  # noqa: E402
from aftersales.service.context import Clock, Context  # noqa: E402
from aftersales.service.deadlines import apply_batch, apply_due  # noqa: E402
from aftersales.store import tables as t  # noqa: E402
from aftersales.store.codec import encode  # noqa: E402
from aftersales.store.db import make_engine, normalise_url  # noqa: E402
from aftersales.store.migrate import upgrade  # noqa: E402
from aftersales.store.repositories import Tracker, order_values  # noqa: E402
from aftersales.testing import ensure_merchant, seed_open_cases  # noqa: E402

try:  # the worker process's garbage collector settings (absent before issue 13's deadline batches)
    from aftersales.worker import tune_gc
except ImportError:  # pragma: no cover - the old code, measured side by side
    def tune_gc() -> None:
        pass

sys.path.insert(0, str(ROOT / "bench"))
from limits import raw_transactions  # noqa: E402

PG = os.environ.get("AFTERSALES_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def database(kind: str, tmp: Path, pg_url: str = PG) -> Any:
    if kind == "sqlite":
        path = tmp / "bench-deadlines.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return make_engine(f"sqlite:///{path}"), None
    schema = f"bench_deadlines_{os.getpid()}"
    admin = create_engine(normalise_url(pg_url))
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"'))
    return make_engine(pg_url, schema=schema), (admin, schema)


def clone_backlog(ctx: Context, n_cases: int, opened_at: datetime) -> None:
    """``n_cases`` copies of one domain-built order with its case and timers, with fresh ids."""
    [template_case] = seed_open_cases(ctx, 1, opened_at, prefix="tpl")
    with ctx.engine.connect() as conn:
        tracker = Tracker(conn, opened_at)
        order = tracker.get_order("tpl-o0")
        assert order is not None
        case = order.cases[0]
        order_row = {"id": "ID", **order_values(order)}
        case_row = {c.name: None for c in t.cases.columns}
        case_row.update(conn.execute(select(t.cases).where(t.cases.c.id == template_case)).mappings().one())
        timers = [dict(r) for r in conn.execute(select(t.timers).where(t.timers.c.subject_id == template_case)).mappings()]
    order_json = json.dumps(encode(order_row["state"]))
    case_json = json.dumps(case_row["state"])
    chunk = 5000
    started = time.perf_counter()
    for start in range(0, n_cases, chunk):
        orders, cases, trows = [], [], []
        for i in range(start, min(n_cases, start + chunk)):
            oid, cid = f"b-o{i}", f"b-c{i}"
            orders.append({**order_row, "id": oid, "state": json.loads(order_json.replace("tpl-o0", oid))})
            cases.append({**case_row, "id": cid, "order_id": oid,
                          "state": json.loads(case_json.replace("tpl-o0", oid).replace(template_case, cid))})
            trows += [{k: v for k, v in tr.items() if k != "id"} | {"subject_id": cid, "order_id": oid} for tr in timers]
        with ctx.engine.begin() as conn:
            conn.execute(insert(t.orders), orders)
            conn.execute(insert(t.cases), cases)
            conn.execute(insert(t.timers), trows)
        done = min(n_cases, start + chunk)
        print(f"\r  building backlog: {done * len(timers):,} timers ({done / (time.perf_counter() - started):,.0f} cases/s)",
              end="", flush=True)
    print()
    del case


def _backends(ctx: Context) -> list[int]:
    """Process ids of the PostgreSQL server processes behind the engine's pooled connections (same machine)."""
    if ctx.engine.dialect.name != "postgresql":
        return []
    pids = []
    with ctx.engine.connect() as conn:
        pids.append(int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()))
    return pids


def _cpu_of(pids: list[int]) -> float | None:
    """CPU seconds (user + system) the processes ``pids`` have used (None where /proc does not show them)."""
    total = 0.0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None
    return total


def drain(ctx: Context, now: datetime, batch: int, total: int, report: Any = None) -> dict[str, Any]:
    """Apply due timers in batches of ``batch`` until none is left; RSS sampled every 10 % of ``total``. On
    PostgreSQL the CPU of the server process behind the worker's connection is read from /proc too (its WAL writer
    and checkpointer are not in it: a lower bound of the server's CPU)."""
    samples = []
    taken_total = fired_total = 0
    backends = _backends(ctx)
    server0 = _cpu_of(backends)
    cpu0 = time.process_time()
    started = time.perf_counter()
    next_sample = 0
    while True:
        taken, fired = apply_batch(ctx, now, batch)
        if taken == 0:
            break
        taken_total += taken
        fired_total += fired
        if taken_total >= next_sample:
            elapsed = time.perf_counter() - started
            samples.append({"taken": taken_total, "seconds": round(elapsed, 2), "rss_mb": round(rss_mb(), 1),
                            "rate": round(taken_total / elapsed) if elapsed else None})
            if report is not None:
                report(taken_total, elapsed)
            next_sample += max(1, total // 10)
    cpu = time.process_time() - cpu0
    server1 = _cpu_of(backends) if backends == _backends(ctx) else None  # the pool kept its one connection
    return {"taken": taken_total, "fired": fired_total, "seconds": time.perf_counter() - started,
            "cpu_seconds": cpu, "memory": samples,
            "server_cpu_seconds": server1 - server0 if server0 is not None and server1 is not None else None}


def _worker_process(url: str, schema: str | None, now: datetime, batch: int, total: int, out: Any, tune: bool) -> None:
    """One more worker process (``--workers``): its own engine, the same code path as ``aftersales worker``."""
    engine = make_engine(url, schema=schema)
    ctx = Context(engine, policy_mod.load(), Clock(True, now))
    if tune:
        tune_gc()
    try:
        out.put(drain(ctx, now, batch, total))
    finally:
        engine.dispose()


def backlog_phase(ctx: Context, backlog: int, *, batch: int, workers: int, url: str, schema: str | None,
                  tune: bool = True) -> dict[str, Any]:
    opened = datetime(2026, 3, 1, tzinfo=UTC)
    n_cases = backlog // 3
    build_started = time.perf_counter()
    clone_backlog(ctx, n_cases, opened)
    # The tables' statistics as autovacuum keeps them on a live database, where the timers accumulate over hours: a
    # million rows copied in under a minute are ahead of autoanalyze, and the claim's plan on stale statistics made
    # the first ~40 s of the drain four times slower than the rest (measured: 1,264/s then 5,180/s per worker).
    with ctx.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    build_seconds = time.perf_counter() - build_started
    now = opened + timedelta(hours=49)
    with ctx.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t.timers)).scalar_one()

    def report(taken: int, elapsed: float) -> None:
        print(f"\r  applied {taken:,}/{total:,}  {taken / elapsed if elapsed else 0:,.0f}/s  rss {rss_mb():.0f} MB", end="", flush=True)

    started = time.perf_counter()
    if workers == 1:
        if tune:  # as `aftersales worker` does at its start
            tune_gc()
        runs = [drain(ctx, now, batch, total, report)]
    else:
        # Several worker processes claim batches side by side (FOR UPDATE SKIP LOCKED on PostgreSQL).
        mp = multiprocessing.get_context("spawn")
        queue = mp.Queue()
        procs = [mp.Process(target=_worker_process, args=(url, schema, now, batch, total // workers, queue, tune)) for _ in range(workers)]
        for proc in procs:
            proc.start()
        runs = []
        while len(runs) < workers:
            try:
                runs.append(queue.get(timeout=5))
            except Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise SystemExit(f"a worker process failed (exit codes {dead})") from None
        for proc in procs:
            proc.join()
    seconds = time.perf_counter() - started
    print()
    taken_total = sum(r["taken"] for r in runs)
    fired_total = sum(r["fired"] for r in runs)
    with ctx.engine.connect() as conn:
        left = conn.execute(select(func.count()).select_from(t.timers)).scalar_one()
    assert taken_total == total and left == 0, f"{taken_total} taken of {total}, {left} left"
    cpu = sum(r["cpu_seconds"] for r in runs)
    return {"backlog": total, "build_seconds": round(build_seconds, 1), "workers": workers, "batch": batch,
            "seconds": round(seconds, 2), "rows_per_s": round(taken_total / seconds),
            "actions_per_s": round(fired_total / seconds), "actions": fired_total,
            # CPU of the worker process(es) per timer: steadier than the rate on a shared machine (not the database's).
            "worker_cpu_seconds": round(cpu, 2), "worker_cpu_us_per_timer": round(cpu / taken_total * 1e6, 1),
            # PostgreSQL: the CPU of the server processes serving the workers' connections (a lower bound: not the
            # WAL writer's, the checkpointer's); None when a worker's pool changed connection meanwhile.
            "server_cpu_us_per_timer": (round(sum(r["server_cpu_seconds"] for r in runs) / taken_total * 1e6, 1)
                                        if runs and all(r.get("server_cpu_seconds") is not None for r in runs) else None),
            "memory": runs[0]["memory"], "memory_per_worker": [r["memory"] for r in runs]}


def steady_phase(ctx: Context, rate: int, seconds: int) -> dict[str, Any]:
    """Real clock: cases opened 48 h ago at ``rate``/3 per second, so ``rate`` timers fall due per second."""
    ctx.clock = Clock(False)
    stop = threading.Event()
    ensure_merchant(ctx, "m-steady", datetime.now(UTC))

    def producer() -> None:
        i = 0
        per_tick = max(1, rate // 3 // 10)
        while not stop.is_set():
            tick = time.perf_counter()
            # M1 deadline 48 h after opening: opening 48 h - 0.5 s ago makes the deadline due in half a second.
            opened = datetime.now(UTC) - timedelta(hours=48) + timedelta(seconds=0.5)
            seed_open_cases(ctx, per_tick, opened, merchant_id="m-steady", prefix=f"s{i}")
            i += 1
            time.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))

    def worker() -> None:
        while not stop.is_set():
            apply_due(ctx, datetime.now(UTC))
            stop.wait(0.2)

    threads = [threading.Thread(target=producer), threading.Thread(target=worker)]
    for th in threads:
        th.start()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(t.events.c.recorded_at, t.events.c.data).where(t.events.c.kind == "auto_approve",
                                                                                 t.events.c.case_id.like("s%"))).all()
    lags = sorted((r.recorded_at - datetime.fromisoformat(r.data["due_at"])).total_seconds() for r in rows)
    if not lags:
        return {"applied": 0}
    return {"offered_per_s": rate, "applied": len(lags), "lag_p50_s": round(statistics.median(lags), 3),
            "lag_p99_s": round(lags[int(len(lags) * 0.99) - 1], 3), "lag_max_s": round(lags[-1], 3)}


#: Functions whose inclusive share the profile lists (a worker's path through a batch).
WATCH = ("apply_batch", "_batch", "due_timers", "due_case_timers", "Tracker.load_orders", "Tracker._load", "from_dict",
         "_apply_rows", "_apply_case", "fire", "settle_new_refunds", "order_policy", "Tracker.flush", "Tracker._save_order",
         "order_values", "encode", "_Batch.write", "write", "with_recoveries", "Tracker._append_events", "insert_with_ids",
         "fan_out", "delete_timers", "arm_timers", "UnitOfWork.commit", "UnitOfWork.__enter__", "Connection.commit",
         "Connection._execute_context", "ClauseElement._compile_w_cache", "HasCacheKey._generate_cache_key",
         "write_batch", "BatchWriter.write")


def profile(args: argparse.Namespace) -> None:
    """The backlog phase of each database under py-spy (``--subprocesses``: the worker processes too); the text summary
    keeps the samples inside :func:`drain` (not the backlog's building) and the collapsed stacks are kept beside it
    (speedscope.app opens them)."""
    import subprocess

    from store_cycle import summarise

    where: Path = args.profile
    where.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    for kind in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        workers = args.workers if kind == "postgresql" else 1
        name = f"deadlines-{kind}-{args.backlog // 1000}k-w{workers}{args.profile_tag}"
        stacks = where / f"{name}.stacks"
        cmd = [sys.executable, __file__, "--db", kind, "--backlog", str(args.backlog), "--batch", str(args.batch),
               "--workers", str(workers), "--steady-seconds", "0", "--no-raw", "--tmp", str(args.tmp),
               "--out", str(where / f"{name}.json")]
        if args.pg_url:
            cmd += ["--pg-url", args.pg_url]
        subprocess.run([str(spy), "record", "--rate", "250", "--subprocesses", "--function", "--format", "raw",
                        "-o", str(stacks), "--", *cmd], check=True, stdout=subprocess.DEVNULL)
        summarise(stacks, where / f"{name}.txt", f"{kind}: {args.backlog:,} due timers, {workers} worker process(es), "
                  f"batch {args.batch}, applied under py-spy", watch=WATCH, within="drain", path="a worker's batch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backlog", type=int, default=1_000_000)
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--batch", type=int, default=500, help="timers claimed per transaction (their cases' other due timers come along)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes applying the backlog side by side (PostgreSQL)")
    ap.add_argument("--rate", type=int, default=300, help="deadlines falling due per second in the steady phase")
    ap.add_argument("--steady-seconds", type=int, default=20)
    ap.add_argument("--tmp", type=Path, default=Path("var"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "deadlines.json")
    ap.add_argument("--pg-url", default=None, help="default AFTERSALES_TEST_DATABASE_URL or the local server")
    ap.add_argument("--default-gc", action="store_true", help="leave the garbage collector as Python sets it (not tune_gc)")
    ap.add_argument("--no-raw", action="store_true", help="skip the raw limit (the driver's own rate)")
    ap.add_argument("--profile-tag", default="", help="appended to the profile's file names (e.g. -before)")
    ap.add_argument("--profile", type=Path, default=None,
                    help="run the backlog phase again under py-spy (every worker process) and write its profile here")
    args = ap.parse_args()
    if args.profile is not None:
        profile(args)
        return
    args.tmp.mkdir(exist_ok=True)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "runs": {}}
    for kind in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        print(f"{kind}:")
        engine, cleanup = database(kind, args.tmp, args.pg_url or PG)
        url = str(engine.url.render_as_string(hide_password=False))
        schema = cleanup[1] if cleanup else None
        upgrade(engine)
        ctx = Context(engine, policy_mod.load(), Clock(True, datetime(2026, 3, 1, tzinfo=UTC)))
        try:
            workers = args.workers if kind == "postgresql" else 1  # SQLite has one writer at a time
            run_result = {"backlog": backlog_phase(ctx, args.backlog, batch=args.batch, workers=workers, url=url, schema=schema,
                                                   tune=not args.default_gc)}
            b = run_result["backlog"]
            server = f" (+ {b['server_cpu_us_per_timer']} µs of PostgreSQL's)" if b.get("server_cpu_us_per_timer") else ""
            print(f"  {b['rows_per_s']:,} timers/s, {b['worker_cpu_us_per_timer']} µs of worker CPU per timer{server}, "
                  f"{workers} worker(s), load average {os.getloadavg()[0]:.1f}")
            if args.steady_seconds > 0:
                run_result["steady"] = steady_phase(ctx, args.rate, args.steady_seconds)
                print(f"  {json.dumps(run_result['steady'])}")
            if not args.no_raw:
                # The raw limit: as many durable transactions, issued directly through the driver (limits.py).
                run_result["raw_limit"] = raw_transactions(kind, engine, max(500, min(run_result["backlog"]["backlog"], 20_000)),
                                                           batch=args.batch)
                # Timers are applied in batches per transaction: compare with rows written durably the same way.
                run_result["ratio_to_raw"] = round(run_result["backlog"]["rows_per_s"]
                                                   / run_result["raw_limit"]["rows_per_s_batched"], 4)
            results["runs"][kind] = run_result
        finally:
            engine.dispose()
            if cleanup:
                admin, schema = cleanup
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
