"""HTTP cycle benchmark: open → approve → refund cycles per second through a real server.

One cycle = three POSTs over HTTP/1.1 keep-alive connections:

1. ``POST /v1/orders`` (merchant key): an unshipped order of 2 items;
2. ``POST /v1/cases`` (buyer key): ``refund_only``, ``no_reason``;
3. ``POST /v1/cases/{id}/approve`` (merchant key): the case closes as ``refunded`` (E2, M1, F1).

Each configuration starts ``uvicorn aftersales.api.server:app --factory --workers W`` as a separate process group
over a fresh database — a SQLite file in a temporary directory, or its own schema of the local PostgreSQL
(``--pg-url``, dropped afterwards) — with the real clock and the in-process deadline worker, creates a merchant
and the keys, then runs the load generator in ANOTHER process (``multiprocessing``, spawn): ``--connections``
concurrent cycles (asyncio tasks sharing one ``httpx.AsyncClient`` limited to that many connections), for a
warm-up of ``--warmup`` seconds and then ``--seconds`` measured seconds. Every response is checked (201, 201,
200 and ``closed``); failures are counted, never retried.

Reported per configuration: cycles/s, requests/s, p50/p90/p99/max latency of every request and per step, the
errors, and the CPU time of the load generator (user+system, and as a share of one core: near 100 % means the
figures are bounded by the load generator, not the server) and of the server's processes (also per request,
which depends less on what else the machine is doing than the rates). The machine's core
count and load average are recorded too: on a busy machine the figures mean little. Written to
``bench/results/http_cycle.json``.

Run: ``make bench-http`` or
``.venv/bin/python bench/http_cycle.py [--seconds 15] [--connections 16] [--configs sqlite:1,postgresql:1,postgresql:2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "http_cycle.json"
PLATFORM_KEY = "bench-platform-key-" + secrets.token_hex(16)
STEPS = ("order", "case", "approve")


# --- the server --------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_cpu_seconds(pgid: int) -> float:
    """User+system CPU of every live process of a process group (Linux /proc), 0 elsewhere."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command: state ppid pgrp session ... utime(14) stime(15) cutime(16) cstime(17), 1-based from pid
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


class Server:
    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.env, self.workers, self.log = env, workers, log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "aftersales.api.server:app", "--factory", "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning", "--no-access-log"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        if self.workers > 1:  # every worker must be up, not just the first one to answer
            time.sleep(1.0 + 0.5 * self.workers)
        return self

    def cpu_seconds(self) -> float:
        return _group_cpu_seconds(self.proc.pid) if self.proc else 0.0

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(20)


@contextlib.contextmanager
def database(kind: str, pg_url: str, tmp: Path) -> Any:
    """A fresh migrated database: yields the AFTERSALES_* variables that point at it."""
    from sqlalchemy import create_engine, text

    from aftersales.store.db import make_engine, normalise_url
    from aftersales.store.migrate import upgrade

    if kind == "sqlite":
        url = f"sqlite:///{tmp}/bench-{secrets.token_hex(4)}.db"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield {"AFTERSALES_DATABASE_URL": url}
        return
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(normalise_url(pg_url))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        engine = make_engine(pg_url, schema=schema)
        upgrade(engine)
        engine.dispose()
        yield {"AFTERSALES_DATABASE_URL": pg_url, "AFTERSALES_DATABASE_SCHEMA": schema}
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def set_up(url: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {PLATFORM_KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
        r = c.post("/v1/merchants", json={"id": "mA", "name": "Bench shop", "return_address": "1 Return Rd"})
        assert r.status_code == 201, r.text
        keys = {}
        for who, subject in (("merchant", "mA"), ("buyer", "bX")):
            r = c.post("/v1/api-keys", json={"role": who, "subject_id": subject})
            assert r.status_code == 201, r.text
            keys[who] = r.json()["key"]
    return keys


# --- the load generator (another process) ------------------------------------------------------------------
async def _load(url: str, keys: dict[str, str], connections: int, warmup: float, seconds: float) -> dict[str, Any]:
    merchant = {"Authorization": f"Bearer {keys['merchant']}"}
    buyer = {"Authorization": f"Bearer {keys['buyer']}"}
    paid_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    latencies: dict[str, list[float]] = {s: [] for s in STEPS}
    errors: dict[str, int] = {}
    cycles = requests = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    prefix = secrets.token_hex(3)

    async def timed(client: httpx.AsyncClient, step: str, path: str, body: Any, headers: dict[str, str], want: int) -> Any:
        nonlocal requests
        requests += 1
        t0 = time.perf_counter()
        try:
            r = await client.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            errors[f"{step}: {type(exc).__name__}"] = errors.get(f"{step}: {type(exc).__name__}", 0) + 1
            return None
        t1 = time.perf_counter()
        if t0 >= measure_from and t1 <= stop_at:
            latencies[step].append(t1 - t0)
        if r.status_code != want:
            errors[f"{step}: {r.status_code}"] = errors.get(f"{step}: {r.status_code}", 0) + 1
            return None
        return r.json()

    async def worker(client: httpx.AsyncClient, n: int) -> None:
        nonlocal cycles
        i = 0
        while time.perf_counter() < stop_at:
            i += 1
            oid = f"b{prefix}-{n}-{i}"
            began = time.perf_counter()
            order = {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": paid_at, "shipping_fee_fen": 500,
                     "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 2, "unit_price_fen": 1999},
                               {"sku": "s2", "title": "Socks", "category": "apparel", "quantity": 1, "unit_price_fen": 500}]}
            if await timed(client, "order", "/v1/orders", order, merchant, 201) is None:
                continue
            case = await timed(client, "case", "/v1/cases", {"order_id": oid, "type": "refund_only", "reason": "no_reason"}, buyer, 201)
            if case is None:
                continue
            done = await timed(client, "approve", f"/v1/cases/{case['id']}/approve", None, merchant, 200)
            if done is None:
                continue
            if done["status"] != "closed" or done["close_reason"] != "refunded":
                errors["approve: not refunded"] = errors.get("approve: not refunded", 0) + 1
            elif began >= measure_from and time.perf_counter() <= stop_at:
                cycles += 1

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    cpu0 = time.process_time()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await asyncio.gather(*(worker(client, n) for n in range(connections)))
    cpu = time.process_time() - cpu0
    elapsed = time.perf_counter() - start
    return {"cycles": cycles, "requests": requests, "latencies": latencies, "errors": errors, "cpu_seconds": cpu, "elapsed": elapsed}


async def _load_empty(url: str, connections: int, warmup: float, seconds: float) -> dict[str, Any]:
    """The raw limit of the same server: ``GET /healthz`` (no database, no auth) on as many connections."""
    done = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    latencies: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            r = await client.get("/healthz")
            t1 = time.perf_counter()
            if r.status_code == 200 and t0 >= measure_from and t1 <= stop_at:
                done += 1
                latencies.append(t1 - t0)

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    return {"requests": done, "latencies": latencies}


def _load_process(url: str, keys: dict[str, str], connections: int, warmup: float, seconds: float, out: Any) -> None:
    out.put(asyncio.run(_load(url, keys, connections, warmup, seconds)))


def _empty_process(url: str, connections: int, warmup: float, seconds: float, out: Any) -> None:
    out.put(asyncio.run(_load_empty(url, connections, warmup, seconds)))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _summary(values: list[float]) -> dict[str, float]:
    return {"count": len(values), "p50_ms": round(_pct(values, 0.50), 2), "p90_ms": round(_pct(values, 0.90), 2),
            "p99_ms": round(_pct(values, 0.99), 2), "max_ms": round(max(values) * 1000, 2) if values else float("nan"),
            "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else float("nan")}


def run_one(kind: str, workers: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    with database(kind, args.pg_url, tmp) as db_env:
        env = {**os.environ, **db_env, "AFTERSALES_ENV": "test", "AFTERSALES_CLOCK": "real",
               "AFTERSALES_BOOTSTRAP_PLATFORM_KEY": PLATFORM_KEY}
        with Server(env, workers, tmp / f"server-{kind}-{workers}.log") as server:
            keys = set_up(server.url)
            load_avg = os.getloadavg() if hasattr(os, "getloadavg") else None
            server_cpu0 = server.cpu_seconds()
            spawn = mp.get_context("spawn")
            out = spawn.Queue()
            proc = spawn.Process(target=_load_process, args=(server.url, keys, args.connections, args.warmup, args.seconds, out))
            proc.start()
            result = out.get(timeout=args.warmup + args.seconds + 300)
            proc.join(60)
            server_cpu = server.cpu_seconds() - server_cpu0
            # The raw limit, same server, same connections: an endpoint that does nothing.
            empty_proc = spawn.Process(target=_empty_process, args=(server.url, args.connections, min(args.warmup, 1.0),
                                                                    args.seconds, out))
            empty_proc.start()
            empty = out.get(timeout=args.seconds + 300)
            empty_proc.join(60)
    lat = result["latencies"]
    every = [v for step in STEPS for v in lat[step]]
    return {
        "database": kind, "uvicorn_workers": workers, "connections": args.connections, "seconds": args.seconds,
        "cycles_per_s": round(result["cycles"] / args.seconds, 1),
        "requests_per_s": round(len(every) / args.seconds, 1),
        "latency": {"all": _summary(every), **{step: _summary(lat[step]) for step in STEPS}},
        "errors": result["errors"],
        "load_generator_cpu_s": round(result["cpu_seconds"], 2),
        "load_generator_cpu_share": round(result["cpu_seconds"] / result["elapsed"], 2),
        "server_cpu_s": round(server_cpu, 2),
        # Over every request of the run, warm-up included: steadier than the rates on a busy machine.
        "server_cpu_ms_per_request": round(server_cpu / max(1, result["requests"]) * 1000, 2),
        "load_average_at_start": [round(x, 2) for x in load_avg] if load_avg else None,
        "empty_endpoint": {"requests_per_s": round(empty["requests"] / args.seconds, 1), **_summary(empty["latencies"])},
        "ratio_to_empty": round(len(every) / max(1, empty["requests"]), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured duration of each configuration")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16, help="concurrent cycles / HTTP connections")
    parser.add_argument("--configs", default="sqlite:1,postgresql:1,postgresql:2", help="database:uvicorn-workers, comma-separated")
    parser.add_argument("--pg-url", default=os.environ.get("AFTERSALES_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    configs = [(c.split(":")[0], int(c.split(":")[1]) if ":" in c else 1) for c in args.configs.split(",") if c]

    runs = []
    with tempfile.TemporaryDirectory(prefix="aftersales-bench-") as tmp:
        for kind, workers in configs:
            print(f"{kind}, {workers} worker(s), {args.connections} connections, {args.seconds:.0f} s ...", flush=True)
            try:
                run = run_one(kind, workers, args, Path(tmp))
            except Exception as exc:  # e.g. no PostgreSQL here: report it, go on with the others
                print(f"  skipped: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", flush=True)
                runs.append({"database": kind, "uvicorn_workers": workers, "skipped": str(exc)[:500]})
                continue
            runs.append(run)
            a = run["latency"]["all"]
            print(f"  {run['cycles_per_s']:8.1f} cycles/s  {run['requests_per_s']:8.1f} req/s  "
                  f"p50 {a['p50_ms']:.1f} ms  p99 {a['p99_ms']:.1f} ms  errors {sum(run['errors'].values())}  "
                  f"load generator {run['load_generator_cpu_s']:.1f} s CPU ({run['load_generator_cpu_share']:.0%} of a core)  "
                  f"server {run['server_cpu_s']:.1f} s CPU ({run['server_cpu_ms_per_request']:.1f} ms a request)", flush=True)
    report = {
        "benchmark": "http_cycle", "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "workload": "POST /v1/orders → POST /v1/cases (refund_only) → POST /v1/cases/{id}/approve (closed, refunded)",
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
