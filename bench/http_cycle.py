"""HTTP benchmark (B1): steps per second, latency, and latency at a fixed offered load, through a real server.

Workloads (each request is one *step*):

- ``cycle``: open → approve → refund cycles, three POSTs: ``POST /v1/orders`` (merchant key, an unshipped order of
  2 items), ``POST /v1/cases`` (buyer key, ``refund_only``/``no_reason``), ``POST /v1/cases/{id}/approve``
  (merchant key: the case closes as ``refunded``; E2, M1, F1).
- ``mix``: half reads, half the cycle's actions: ``GET /v1/cases/{id}`` (25 %), ``GET /v1/cases?limit=20``
  (merchant's queue, 10 %), ``GET /v1/orders/{id}/after-sales-options`` (eligibility, 15 %), cycle steps (50 %).

Each configuration (``database:uvicorn-workers``) starts ``uvicorn aftersales.api.server:app --factory`` (uvloop,
httptools, no access log) as its own process group over a fresh database — a SQLite file in a temporary directory
or its own schema of the local PostgreSQL (``--pg-url``, dropped afterwards) — with the real clock and the
in-process deadline worker, creates a merchant and its keys, then runs, from load generator processes separate
from the server (``--generators``, ``multiprocessing`` spawn):

1. **closed loop** per workload: ``--connections`` keep-alive connections each issuing its next step as soon as
   the previous one answered, ``--warmup`` s not counted then ``--seconds`` s measured: the capacity (steps/s)
   and the latency at that saturation;
2. **open loop** (``--rates``, e.g. ``200,500,1000`` steps/s, workload ``--open-workload``): requests are
   *scheduled* at a constant rate whatever the server does, sent over a pool of ``--connections`` connections, and
   each latency is measured **from its scheduled time**, so that time spent queueing behind a slow server (in the
   generator, waiting for a free connection, or in the server) is counted, not hidden (no coordinated omission).
   Requests still unanswered at the end count as ``late``; more than ``--max-outstanding`` waiting are ``dropped``;
3. the raw limit: ``GET /healthz`` (no database, no key) on the same server, the same connections and generators.

Every response is checked (201, 201, 200 and ``closed``/``refunded``; reads 200); failures are counted, never
retried. The load generator is a lean HTTP/1.1 client on asyncio streams (uvloop when present), cheaper per request
than httpx (``--compare-clients`` measures both on ``/healthz``); its CPU time is reported (user+system, per request
and as a share of one core per generator process: near 100 % means the generator, not the server, is the limit),
as is the server process group's CPU per request — and, on PostgreSQL, the CPU of the database backends serving
the server's connections (named by ``PGAPPNAME``; same machine only), and both per cycle. The core count and load
average are recorded: on a busy machine the rates mean little, the CPU per request is steadier. ``--profile DIR``
attaches ``py-spy --gil`` to the server during the closed-loop cycle (docs/perf/request/);
``--no-in-process-worker`` leaves deadlines to a separate worker.

Run: ``make bench-http`` or ``.venv/bin/python bench/http_cycle.py [--seconds 15] [--connections 16]
[--configs sqlite:1,postgresql:1,postgresql:2] [--rates 200,500,1000] [--workloads cycle,mix]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from procs import stop_group  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "http_cycle.json"
PLATFORM_KEY = "bench-platform-key-" + secrets.token_hex(16)
STEPS = ("order", "case", "approve")
READS = ("get_case", "list_cases", "options")
#: The mix: cumulative shares of the reads; the rest (50 %) are the cycle's steps.
MIX = (("get_case", 0.25), ("list_cases", 0.35), ("options", 0.50))


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


def _pids_cpu_seconds(pids: set[int]) -> float:
    """User+system CPU of the live processes ``pids`` (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def backend_cpu(pg_url: str, app_name: str) -> Callable[[], float]:
    """A probe of the CPU of the PostgreSQL backends whose ``application_name`` is ``app_name`` (the server's
    connections: libpq takes it from ``PGAPPNAME``), for a database on this machine. The backends are listed
    at each call; a backend that closed between two calls takes its CPU with it (the pool keeps them open)."""
    from sqlalchemy import create_engine, text

    from aftersales.store.db import normalise_url

    engine = create_engine(normalise_url(pg_url), pool_size=1)
    seen: dict[int, float] = {}

    def probe() -> float:
        with engine.connect() as conn:
            pids = {int(p) for p in conn.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"),
                                                 {"a": app_name}).scalars()}
        for pid in pids:
            seen[pid] = _pids_cpu_seconds({pid})
        return sum(seen.values())

    return probe


def _get(url: str, timeout: float = 2.0) -> int:
    """Status of a plain GET (stdlib only): the readiness probe."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        return conn.getresponse().status
    finally:
        conn.close()


class Server:
    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.env, self.workers, self.log = env, workers, log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.db_cpu: Callable[[], float] | None = None
        self.profile: Callable[[float, float], None] | None = None

    def __enter__(self) -> Server:
        with self.log.open("ab") as out:
            # The flags we recommend for production (README): uvloop + httptools (uvicorn[standard] would pick them
            # anyway; explicit so a missing one fails loudly), no access log, keep-alive longer than the client's gaps.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "aftersales.api.server:app", "--factory", "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", str(self.workers), "--loop", "uvloop", "--http", "httptools",
                 "--log-level", "warning", "--no-access-log", "--backlog", "4096", "--timeout-keep-alive", "30"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        deadline = time.monotonic() + 60 + 30 * self.workers  # every worker imports and builds the app
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if _get(f"{self.url}/healthz") == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        if self.workers > 1:  # every worker must be up, not just the first one to answer
            time.sleep(1.0 + 0.5 * self.workers)
        return self

    def cpu_seconds(self) -> float:
        return _group_cpu_seconds(self.proc.pid) if self.proc else 0.0

    def db_cpu_seconds(self) -> float:
        """User+system CPU of the PostgreSQL backends serving this server (0 on SQLite: it runs in the server)."""
        return self.db_cpu() if self.db_cpu is not None else 0.0

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_group(self.proc)


@contextlib.contextmanager
def database(kind: str, pg_url: str, tmp: Path) -> Any:
    """A fresh migrated database: yields the AFTERSALES_* variables that point at it."""
    from aftersales.store.db import make_engine
    from aftersales.store.migrate import migrated_schema, upgrade

    if kind == "sqlite":
        url = f"sqlite:///{tmp}/bench-{secrets.token_hex(4)}.db"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield {"AFTERSALES_DATABASE_URL": url}
        return
    with migrated_schema(pg_url, f"bench_{secrets.token_hex(4)}") as schema:
        yield {"AFTERSALES_DATABASE_URL": pg_url, "AFTERSALES_DATABASE_SCHEMA": schema}


def set_up(url: str) -> dict[str, str]:
    import httpx

    headers = {"Authorization": f"Bearer {PLATFORM_KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
        r = c.post("/v1/merchants", json={"id": "mA", "name": "Bench shop", "return_address": "1 Return Rd"})
        assert r.status_code == 201, r.text
        r = c.put("/v1/categories/apparel", json={"name": "Apparel", "no_reason_return": True})  # E4: orders name it
        assert r.status_code in (200, 201), r.text
        keys = {}
        for who, subject in (("merchant", "mA"), ("buyer", "bX")):
            r = c.post("/v1/api-keys", json={"role": who, "subject_id": subject})
            assert r.status_code == 201, r.text
            keys[who] = r.json()["key"]
    return keys


# --- a lean HTTP/1.1 keep-alive client ------------------------------------------------------------------------
class HttpError(Exception):
    pass


class Conn:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a request, then its whole response, in turn."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.host_header = f"host: {host}:{port}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: bytes, path: str, auth: bytes, body: bytes | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        if body is None:
            tail = b"content-length: 0\r\n\r\n" if method == b"POST" else b"\r\n"
            self.writer.write(b"".join((method, b" ", path.encode(), b" HTTP/1.1\r\n", self.host_header, auth, tail)))
        else:
            self.writer.write(b"".join((method, b" ", path.encode(), b" HTTP/1.1\r\n", self.host_header, auth,
                                        b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(),
                                        b"\r\n\r\n", body)))
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                data = await self.reader.readexactly(int(lower[at + 17:lower.index(b"\r\n", at + 2)]))
            elif b"\r\ntransfer-encoding: chunked" in lower:
                chunks = []
                while True:
                    size = int((await self.reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
                    chunks.append(await self.reader.readexactly(size + 2))
                    if size == 0:
                        break
                data = b"".join(c[:-2] for c in chunks)
            else:
                data = b""
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self.close()
            raise HttpError(type(exc).__name__) from exc
        if b"\r\nconnection: close" in lower:
            self.close()
        return status, data


# --- the workloads ------------------------------------------------------------------------------------------
@dataclass
class Step:
    name: str
    method: bytes
    path: str
    auth: bytes
    body: bytes | None
    want: int
    done: Callable[[bytes], bool] | None = None  # parses the answer, updates the workload; False: a wrong answer


@dataclass
class Workload:
    """What to ask next, shared by every connection of one generator: a cycle is order → case → approve, each
    step issued when the previous one of that order answered (the next free connection takes it)."""

    kind: str
    keys: dict[str, str]
    prefix: str
    rng: random.Random
    paid_at: str = field(default_factory=lambda: (datetime.now(UTC) - timedelta(hours=1)).isoformat())
    ready_orders: deque[str] = field(default_factory=deque)
    ready_cases: deque[str] = field(default_factory=deque)
    known_orders: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    known_cases: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    count: int = 0
    cycles: list[float] = field(default_factory=list)  # completion times of refunded cycles

    def __post_init__(self) -> None:
        self.merchant = f"authorization: Bearer {self.keys['merchant']}\r\n".encode()
        self.buyer = f"authorization: Bearer {self.keys['buyer']}\r\n".encode()

    def next(self) -> Step:
        if self.kind == "mix" and self.known_cases:
            r = self.rng.random()
            if r < MIX[0][1]:
                return Step("get_case", b"GET", f"/v1/cases/{self.rng.choice(self.known_cases)}", self.buyer, None, 200)
            if r < MIX[1][1]:
                return Step("list_cases", b"GET", "/v1/cases?limit=20", self.merchant, None, 200)
            if r < MIX[2][1]:
                return Step("options", b"GET", f"/v1/orders/{self.rng.choice(self.known_orders)}/after-sales-options",
                            self.buyer, None, 200)
        if self.ready_cases:
            case_id = self.ready_cases.popleft()

            def approved(data: bytes) -> bool:
                done = json.loads(data)
                if done["status"] != "closed" or done["close_reason"] != "refunded":
                    return False
                self.known_cases.append(done["id"])
                self.cycles.append(time.monotonic())
                return True

            return Step("approve", b"POST", f"/v1/cases/{case_id}/approve", self.merchant, None, 200, approved)
        if self.ready_orders:
            oid = self.ready_orders.popleft()

            def opened(data: bytes) -> bool:
                self.ready_cases.append(json.loads(data)["id"])
                return True

            body = json.dumps({"order_id": oid, "type": "refund_only", "reason": "no_reason"}).encode()
            return Step("case", b"POST", "/v1/cases", self.buyer, body, 201, opened)
        self.count += 1
        oid = f"b{self.prefix}-{self.count}"
        order = {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": self.paid_at, "shipping_fee_fen": 500,
                 "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 2, "unit_price_fen": 1999},
                           {"sku": "s2", "title": "Socks", "category": "apparel", "quantity": 1, "unit_price_fen": 500}]}

        def created(_: bytes) -> bool:
            self.ready_orders.append(oid)
            self.known_orders.append(oid)
            return True

        return Step("order", b"POST", "/v1/orders", self.merchant, json.dumps(order).encode(), 201, created)


HEALTH = Step("healthz", b"GET", "/healthz", b"", None, 200)


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    requests: int = 0  # every request sent, warm-up included

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def _send(conn: Conn, step: Step, tally: Tally, idempotency: bool = False) -> bool:
    tally.requests += 1
    auth = step.auth
    if idempotency and step.method == b"POST":  # API.md: a client that retries safely sends a key on every POST
        auth += b"idempotency-key: " + secrets.token_hex(16).encode() + b"\r\n"
    try:
        status, data = await conn.request(step.method, step.path, auth, step.body)
    except HttpError as exc:
        tally.error(f"{step.name}: {exc}")
        return False
    if status != step.want:
        tally.error(f"{step.name}: {status}")
        return False
    if step.done is not None and not step.done(data):
        tally.error(f"{step.name}: wrong answer")
        return False
    return True


async def _closed_loop(conns: list[Conn], next_step: Callable[[], Step], measure_from: float, stop_at: float,
                       tally: Tally, idempotency: bool) -> None:
    async def worker(conn: Conn) -> None:
        while time.monotonic() < stop_at:
            step = next_step()
            t0 = time.monotonic()
            ok = await _send(conn, step, tally, idempotency)
            t1 = time.monotonic()
            if ok and t0 >= measure_from and t1 <= stop_at:
                tally.latencies.setdefault(step.name, []).append(t1 - t0)

    await asyncio.gather(*(worker(c) for c in conns))


async def _open_loop(conns: list[Conn], next_step: Callable[[], Step], rate: float, start: float, measure_from: float,
                     stop_at: float, max_outstanding: int, tally: Tally, idempotency: bool) -> dict[str, int]:
    """Requests scheduled every 1/rate s from ``start``; latency from the scheduled time (queueing included)."""
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for c in conns:
        pool.put_nowait(c)
    tasks: set[asyncio.Task[None]] = set()
    counts = {"scheduled": 0, "dropped": 0, "late": 0}

    async def one(scheduled: float) -> None:
        conn = await pool.get()
        try:
            step = next_step()
            ok = await _send(conn, step, tally, idempotency)
        finally:
            pool.put_nowait(conn)
        if ok and scheduled >= measure_from:
            tally.latencies.setdefault(step.name, []).append(time.monotonic() - scheduled)

    i = 0
    while True:
        scheduled = start + i / rate
        if scheduled >= stop_at:
            break
        i += 1
        now = time.monotonic()
        if scheduled > now:
            await asyncio.sleep(scheduled - now)
        if scheduled >= measure_from:
            counts["scheduled"] += 1
        if len(tasks) >= max_outstanding:
            counts["dropped"] += scheduled >= measure_from
            continue
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:  # a grace period for the last answers; what is still unanswered after it is late
        _done, pending = await asyncio.wait(set(tasks), timeout=5.0)
        counts["late"] = len(pending)
        for task in pending:
            task.cancel()
    return counts


@dataclass
class Job:
    """What one generator process runs: ``loop`` closed or open, on ``workload`` (``cycle``, ``mix``, ``empty``)."""

    url: str
    keys: dict[str, str]
    workload: str
    loop: str
    connections: int
    warmup: float
    seconds: float
    rate: float = 0.0
    max_outstanding: int = 10_000
    seed: int = 0
    idempotency: bool = False


async def _generate(job: Job, ready: Any, go: Any, start_at: Any) -> dict[str, Any]:
    host, port = job.url.removeprefix("http://").split(":")
    conns = [Conn(host, int(port)) for _ in range(job.connections)]
    for c in conns:
        await c.open()
    ready.put(os.getpid())
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    start = start_at.value
    while time.monotonic() < start:
        await asyncio.sleep(min(0.01, start - time.monotonic()))
    cpu0 = time.process_time()
    tally = Tally()
    measure_from, stop_at = start + job.warmup, start + job.warmup + job.seconds
    if job.workload == "empty":
        def next_step() -> Step:
            return HEALTH
        work = None
    else:
        work = Workload(job.workload, job.keys, f"{secrets.token_hex(3)}{job.seed}", random.Random(job.seed))
        next_step = work.next
    counts: dict[str, int] = {}
    if job.loop == "closed":
        await _closed_loop(conns, next_step, measure_from, stop_at, tally, job.idempotency)
    else:
        counts = await _open_loop(conns, next_step, job.rate, start, measure_from, stop_at, job.max_outstanding, tally,
                                  job.idempotency)
    cpu = time.process_time() - cpu0
    elapsed = time.monotonic() - start
    for c in conns:
        c.close()
    cycles = sum(1 for t in work.cycles if measure_from <= t <= stop_at) if work else 0
    return {"latencies": tally.latencies, "errors": tally.errors, "requests": tally.requests, "cycles": cycles,
            "cpu_seconds": cpu, "elapsed": elapsed, **counts}


def _generator_process(job: Job, ready: Any, go: Any, start_at: Any, out: Any) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()  # the cheaper event loop for the generator too
    out.put(asyncio.run(_generate(job, ready, go, start_at)))


def run_generators(job: Job, generators: int, server: Server | None) -> dict[str, Any]:
    """``generators`` processes share ``job``'s connections and rate; returns the merged tally and the server's CPU."""
    spawn = mp.get_context("spawn")
    ready, out, go = spawn.Queue(), spawn.Queue(), spawn.Event()
    start_at = spawn.Value("d", 0.0)
    per = [max(1, job.connections // generators + (i < job.connections % generators)) for i in range(generators)]
    procs = []
    for i in range(generators):
        sub = Job(**{**job.__dict__, "connections": per[i], "rate": job.rate / generators, "seed": job.seed * 100 + i})
        proc = spawn.Process(target=_generator_process, args=(sub, ready, go, start_at, out), daemon=True)
        proc.start()
        procs.append(proc)
    for _ in procs:
        ready.get(timeout=120)
    start_at.value = time.monotonic() + 0.2
    cpu0 = server.cpu_seconds() if server else 0.0
    db0 = server.db_cpu_seconds() if server else 0.0
    go.set()
    if server is not None and server.profile is not None and job.workload == "cycle" and job.loop == "closed":
        server.profile(job.warmup, job.seconds)
    results = [out.get(timeout=job.warmup + job.seconds + 300) for _ in procs]
    server_cpu = server.cpu_seconds() - cpu0 if server else 0.0
    db_cpu = server.db_cpu_seconds() - db0 if server else 0.0
    for proc in procs:
        proc.join(60)
    merged: dict[str, Any] = {"latencies": {}, "errors": {}, "requests": 0, "cycles": 0, "cpu_seconds": 0.0,
                              "max_cpu_share": 0.0, "scheduled": 0, "dropped": 0, "late": 0}
    for r in results:
        for step, values in r["latencies"].items():
            merged["latencies"].setdefault(step, []).extend(values)
        for what, n in r["errors"].items():
            merged["errors"][what] = merged["errors"].get(what, 0) + n
        for k in ("requests", "cycles", "cpu_seconds", "scheduled", "dropped", "late"):
            merged[k] += r.get(k, 0)
        merged["max_cpu_share"] = max(merged["max_cpu_share"], r["cpu_seconds"] / r["elapsed"])
    merged["server_cpu_seconds"] = server_cpu
    merged["db_cpu_seconds"] = db_cpu
    return merged


# --- figures ----------------------------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _summary(values: list[float]) -> dict[str, float]:
    return {"count": len(values), "p50_ms": round(_pct(values, 0.50), 2), "p90_ms": round(_pct(values, 0.90), 2),
            "p99_ms": round(_pct(values, 0.99), 2), "max_ms": round(max(values) * 1000, 2) if values else float("nan"),
            "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else float("nan")}


def _figures(m: dict[str, Any], seconds: float, generators: int) -> dict[str, Any]:
    every = [v for values in m["latencies"].values() for v in values]
    return {
        "steps_per_s": round(len(every) / seconds, 1),
        "latency": {"all": _summary(every), **{step: _summary(v) for step, v in sorted(m["latencies"].items())}},
        "errors": m["errors"],
        "load_generator": {"processes": generators, "cpu_s": round(m["cpu_seconds"], 2),
                           "cpu_us_per_request": round(m["cpu_seconds"] / max(1, m["requests"]) * 1e6, 1),
                           "max_share_of_a_core": round(m["max_cpu_share"], 2)},
        "server_cpu_s": round(m["server_cpu_seconds"], 2),
        # Over every request of the phase, warm-up included: steadier than the rates on a busy machine.
        "server_cpu_ms_per_request": round(m["server_cpu_seconds"] / max(1, m["requests"]) * 1000, 3),
        # PostgreSQL only: the backends of the server's connections (see backend_cpu), same phase.
        "db_cpu_s": round(m["db_cpu_seconds"], 2),
        "db_cpu_ms_per_request": round(m["db_cpu_seconds"] / max(1, m["requests"]) * 1000, 3),
    }


def run_one(kind: str, workers: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    with database(kind, args.pg_url, tmp) as db_env:
        app_name = f"aftersales-bench-{secrets.token_hex(4)}"  # names the server's PostgreSQL backends
        env = {**os.environ, **db_env, "AFTERSALES_ENV": "test", "AFTERSALES_CLOCK": "real",
               "AFTERSALES_BOOTSTRAP_PLATFORM_KEY": PLATFORM_KEY, "PGAPPNAME": app_name}
        if args.in_process_worker is False:
            env["AFTERSALES_WORKER_IN_PROCESS"] = "false"
        with Server(env, workers, tmp / f"server-{kind}-{workers}.log") as server:
            keys = set_up(server.url)
            if kind == "postgresql":
                server.db_cpu = backend_cpu(args.pg_url, app_name)
            if args.profile is not None:
                server.profile = _profiler(server, args.profile, f"{kind}-{workers}")
            load_avg = os.getloadavg() if hasattr(os, "getloadavg") else None
            base = {"url": server.url, "keys": keys, "connections": args.connections, "idempotency": args.idempotency}
            closed: dict[str, Any] = {}
            for n, workload in enumerate(args.workloads):
                m = run_generators(Job(**base, workload=workload, loop="closed", warmup=args.warmup, seconds=args.seconds,
                                       seed=n + 1), args.generators, server)
                closed[workload] = {**_figures(m, args.seconds, args.generators),
                                    "cycles_per_s": round(m["cycles"] / args.seconds, 1)}
                if workload == "cycle":  # a cycle is 3 requests; CPU over the phase's requests (warm-up included)
                    f = closed[workload]
                    f["cpu_ms_per_cycle"] = {"server": round(3 * f["server_cpu_ms_per_request"], 2),
                                             "database": round(3 * f["db_cpu_ms_per_request"], 2)}
                _print(f"closed {workload}", closed[workload])
            open_loop = []
            for n, rate in enumerate(args.rates):
                m = run_generators(Job(**base, workload=args.open_workload, loop="open", rate=rate, warmup=min(args.warmup, 1.0),
                                       seconds=args.open_seconds, max_outstanding=args.max_outstanding, seed=50 + n),
                                   args.generators, server)
                figures = _figures(m, args.open_seconds, args.generators)
                run = {"workload": args.open_workload, "offered_per_s": rate, "achieved_per_s": figures.pop("steps_per_s"),
                       "scheduled": m["scheduled"], "dropped": m["dropped"], "late": m["late"], **figures}
                open_loop.append(run)
                _print(f"open {args.open_workload} @ {rate:g}/s", {**run, "steps_per_s": run["achieved_per_s"]})
            # The raw limit of the same server: an endpoint that does nothing, same connections and generators.
            m = run_generators(Job(**base, workload="empty", loop="closed", warmup=min(args.warmup, 1.0), seconds=args.seconds),
                               args.generators, server)
            empty = _figures(m, args.seconds, args.generators)
            _print("empty endpoint", empty)
            if "cycle" in closed:
                print(f"  ratio cycle/empty {closed['cycle']['steps_per_s'] / max(1.0, empty['steps_per_s']):.3f}"
                      f"  CPU ms per cycle {closed['cycle']['cpu_ms_per_cycle']}  load average {load_avg}", flush=True)
            compare = compare_clients(server.url, args) if args.compare_clients else None
    main = closed.get("cycle") or next(iter(closed.values()))
    return {
        "database": kind, "uvicorn_workers": workers, "connections": args.connections, "generators": args.generators,
        "idempotency_keys": args.idempotency,
        "seconds": args.seconds, "load_average_at_start": [round(x, 2) for x in load_avg] if load_avg else None,
        "closed_loop": closed, "open_loop": open_loop,
        "empty_endpoint": {"requests_per_s": empty["steps_per_s"], **empty["latency"]["all"],
                           "server_cpu_ms_per_request": empty["server_cpu_ms_per_request"],
                           "load_generator": empty["load_generator"]},
        "client_comparison": compare,
        # The headline (run.py's table): the cycle workload in closed loop, as a ratio to the empty endpoint.
        "cycles_per_s": main.get("cycles_per_s"), "requests_per_s": main["steps_per_s"], "latency": main["latency"],
        "errors": main["errors"], "server_cpu_ms_per_request": main["server_cpu_ms_per_request"],
        "ratio_to_empty": round(main["steps_per_s"] / max(1.0, empty["steps_per_s"]), 3),
    }


def _profiler(server: Server, where: Path, name: str) -> Callable[[float, float], None]:
    """py-spy attached to the server's process(es) for the measured seconds of the closed-loop cycle (after the
    warm-up): the raw collapsed stacks (``cycle-NAME.stacks``, not committed) and their text summary
    (``cycle-NAME.txt``, store_cycle's layers and functions of the cycle's path)."""
    def run(warmup: float, seconds: float) -> None:
        assert server.proc is not None
        where.mkdir(parents=True, exist_ok=True)
        stacks = where / f"cycle-{name}.stacks"
        time.sleep(warmup + 0.2)
        spy = Path(sys.executable).parent / "py-spy"
        subprocess.run([str(spy), "record", "--pid", str(server.proc.pid), "--subprocesses", "--rate", "200", "--gil",
                        "--duration", str(max(1, int(seconds) - 1)), "--function", "--format", "raw", "-o", str(stacks)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summarise_request(stacks, where / f"cycle-{name}.txt",
                          f"{name}: HTTP cycle (order → case → approve), uvicorn server under closed-loop load, {int(seconds)} s")

    return run


#: Where a request's time goes: the first part (innermost frame outwards) a sample's frames belong to.
PARTS = (("store: SQLAlchemy, driver, aftersales.store", ("sqlalchemy/", "psycopg", "sqlite3", "aftersales/store/")),
         ("serialisation (responses: encoders, JSON)", ("serialize_response", "jsonable_encoder", "orjson", "json/",
                                                      "JSONResponse.render", "ORJSONResponse", "_prepare_response_content")),
         ("validation (pydantic: bodies, headers, response models)", ("pydantic",)),
         ("domain and services", ("aftersales/domain/", "aftersales/policy/", "aftersales/service/")),
         ("auth (API key → principal)", ("resolve_key", "get_principal", "HTTPBearer", "authenticate")),
         ("Idempotency-Key middleware", ("Idempotency.", "stored_form", "bind_answer")),
         ("thread hop (anyio thread pool, wake-ups)", ("to_thread", "run_sync_in_worker_thread", "run_in_threadpool",
                                                      "threading.py", "concurrent/", "_write_to_self", "WorkerThread")),
         ("framework: uvicorn, Starlette, FastAPI routing and dependencies, middleware",
          ("uvicorn/", "starlette/", "fastapi/", "anyio/", "aftersales/api/", "aftersales/web/")),
         ("event loop, other", ("",)))
#: Functions whose inclusive share is listed (a request's path through the server).
REQUEST_PATH = ("RequestResponseCycle.run_asgi", "AllowHeader.__call__", "BodyLimit.__call__", "Idempotency.__call__",
                "_IncludedRouter._match", "HttpToolsProtocol.data_received", "RequestResponseCycle.send",
                "Idempotency._claim", "Idempotency._finish", "resolve_key", "get_principal", "solve_dependencies",
                "request_body_to_args", "run_endpoint_function", "run_in_threadpool", "serialize_response",
                "jsonable_encoder", "JSONResponse.render", "ORJSONResponse.render", "json_response", "UnitOfWork.__enter__",
                "UnitOfWork.commit", "Tracker.flush", "fan_out", "create_order", "open_case", "act", "case_view",
                "order_view", "Connection._execute_context", "Connection.commit")


def summarise_request(stacks: Path, out: Path, title: str) -> None:
    """A text profile of py-spy's collapsed stacks (``--gil --function --format raw``: samples of the thread holding
    the GIL, i.e. Python's CPU): samples by part of the request (:data:`PARTS`) and the inclusive share of the
    functions of :data:`REQUEST_PATH`."""
    from collections import Counter

    parts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count, frames = int(n), stack.split(";")
        total += count
        part = next((name for frame in reversed(frames) for name, marks in PARTS[:-1] if any(m in frame for m in marks)),
                    PARTS[-1][0])
        parts[part] += count
        for name in {f.split(" (")[0] for f in frames}:
            if name in REQUEST_PATH:
                inclusive[name] += count
    total = max(1, total)
    lines = [title, f"samples: {total} (py-spy --gil: the thread holding the GIL; idle excluded)", "",
             "by part (innermost frame outwards, first match):"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in parts.most_common()]
    lines += ["", "inclusive, functions of the request's path:"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common()]
    out.write_text("\n".join(lines) + "\n")


def _print(what: str, f: dict[str, Any]) -> None:
    a, g = f["latency"]["all"], f["load_generator"]
    extra = f"  (offered {f['offered_per_s']:g}/s, dropped {f['dropped']}, late {f['late']})" if "offered_per_s" in f else ""
    print(f"  {what:<24} {f['steps_per_s']:8.1f} steps/s  p50 {a['p50_ms']:7.1f} ms  p99 {a['p99_ms']:7.1f} ms  "
          f"errors {sum(f['errors'].values())}  generator {g['cpu_us_per_request']:.0f} µs/req "
          f"({g['max_share_of_a_core']:.0%} of a core)  server {f['server_cpu_ms_per_request']:.2f} ms CPU/req"
          f"  database {f['db_cpu_ms_per_request']:.2f} ms CPU/req{extra}",
          flush=True)


# --- which client: httpx against the lean one, on /healthz ---------------------------------------------------------
async def _httpx_empty(url: str, connections: int, seconds: float) -> dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    done = 0
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await client.get("/healthz")
        cpu0, stop_at = time.process_time(), time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                if (await client.get("/healthz")).status_code == 200:
                    done += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        cpu = time.process_time() - cpu0
    return {"requests_per_s": round(done / seconds, 1), "cpu_us_per_request": round(cpu / max(1, done) * 1e6, 1),
            "share_of_a_core": round(cpu / seconds, 2)}


def _httpx_process(url: str, connections: int, seconds: float, out: Any) -> None:
    out.put(asyncio.run(_httpx_empty(url, connections, seconds)))


def compare_clients(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """``GET /healthz`` from one generator process: httpx (asyncio) against the lean client (uvloop)."""
    spawn = mp.get_context("spawn")
    out = spawn.Queue()
    proc = spawn.Process(target=_httpx_process, args=(url, args.connections, args.seconds, out))
    proc.start()
    httpx_figures = out.get(timeout=args.seconds + 120)
    proc.join(30)
    m = run_generators(Job(url=url, keys={}, workload="empty", loop="closed", connections=args.connections, warmup=0.0,
                           seconds=args.seconds), 1, None)
    lean = {"requests_per_s": round(m["requests"] / args.seconds, 1),
            "cpu_us_per_request": round(m["cpu_seconds"] / max(1, m["requests"]) * 1e6, 1),
            "share_of_a_core": round(m["max_cpu_share"], 2)}
    print(f"  clients on /healthz: httpx {httpx_figures}  lean {lean}", flush=True)
    return {"httpx": httpx_figures, "lean": lean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured duration of each closed-loop run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16, help="keep-alive HTTP connections (closed loop: concurrent steps)")
    parser.add_argument("--generators", type=int, default=1, help="load generator processes sharing the connections")
    parser.add_argument("--workloads", default="cycle,mix", help="closed-loop workloads, comma-separated: cycle, mix")
    parser.add_argument("--rates", default="200,500,1000", help="open-loop offered loads in steps/s, comma-separated ('' = none)")
    parser.add_argument("--open-workload", default="cycle", choices=("cycle", "mix"))
    parser.add_argument("--open-seconds", type=float, default=10.0, help="measured duration of each open-loop run")
    parser.add_argument("--max-outstanding", type=int, default=10_000, help="open loop: scheduled requests waiting at most")
    parser.add_argument("--configs", default="sqlite:1,postgresql:1,postgresql:2", help="database:uvicorn-workers, comma-separated")
    parser.add_argument("--idempotency", action="store_true", help="send an Idempotency-Key (a fresh one) with every POST")
    parser.add_argument("--compare-clients", action="store_true", help="also measure httpx against the lean client on /healthz")
    parser.add_argument("--pg-url", default=os.environ.get("AFTERSALES_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--profile", type=Path, default=None,
                        help="attach py-spy to the server during the closed-loop cycle and write its profile here")
    parser.add_argument("--no-in-process-worker", dest="in_process_worker", action="store_false",
                        help="AFTERSALES_WORKER_IN_PROCESS=false (deadlines left to a separate `aftersales worker`)")
    args = parser.parse_args()
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.rates = [float(r) for r in args.rates.split(",") if r]
    configs = [(c.split(":")[0], int(c.split(":")[1]) if ":" in c else 1) for c in args.configs.split(",") if c]

    runs = []
    with tempfile.TemporaryDirectory(prefix="aftersales-bench-") as tmp:
        for kind, workers in configs:
            print(f"{kind}, {workers} worker(s), {args.connections} connections, {args.generators} generator(s) ...", flush=True)
            try:
                run = run_one(kind, workers, args, Path(tmp))
            except Exception as exc:  # e.g. no PostgreSQL here: report it, go on with the others
                print(f"  skipped: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", flush=True)
                runs.append({"database": kind, "uvicorn_workers": workers, "skipped": str(exc)[:500]})
                continue
            runs.append(run)
    report = {
        "benchmark": "http_cycle", "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "workloads": {"cycle": "POST /v1/orders → POST /v1/cases (refund_only) → POST /v1/cases/{id}/approve (closed, refunded)",
                      "mix": "50 % the cycle's steps; GET /v1/cases/{id} 25 %, GET /v1/cases?limit=20 10 %, "
                             "GET /v1/orders/{id}/after-sales-options 15 %"},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
