"""Fault soak: mixed load with deadlines firing while the server is SIGKILLed and PostgreSQL restarts; nothing lost.

What it does (issue 7, "Faults"):

1. Runs its OWN PostgreSQL cluster (``initdb`` as user ``postgres`` into a temporary directory, started with
   ``pg_ctl`` on a free port, its socket in that directory, durability settings left at their defaults: fsync on,
   synchronous_commit on), so that restarting it disturbs nobody else. It is stopped and deleted at the end, also
   on failure or Ctrl-C.
2. Starts the real server, ``aftersales serve`` (API + in-process deadline worker), as a supervised child in its
   own process group and restarts it whenever it dies, 0.1 s later (like systemd ``Restart=always``).
3. Drives mixed load from ANOTHER process (``multiprocessing``, spawn): orders of two shops, refund-only cases
   the merchant approves or leaves to M1, return-and-refund cases (approved, or left to the M1 reminders and
   auto-approval, returns shipped and confirmed or left to M5/M6), refusals left to M2, group orders that form or
   fail (G4), and reads; a webhook subscription to every event points at a receiver in this process, which answers
   500 to 3 % of deliveries. Every POST carries an ``Idempotency-Key`` (API.md); a connection error, a 5xx or a 409
   "request in progress" is retried with the same key; every 2xx write is recorded as acknowledged, and a 409
   "request applied, response lost" is recorded too (the server says it took effect, so it is checked as well).
   Deadlines fire during the soak: the server runs on the manual clock (``AFTERSALES_CLOCK=manual``, the
   project's own way for tests and demos) under a policy file with short durations (every RULEBOOK duration is
   in whole hours or days, so a real-clock soak of minutes would see no deadline fall due), and a ticker in this
   process makes that clock pass like real time, only faster (``--sim-hours-per-second``, default 0.5 h of
   platform time per real second): it writes the instant where ``POST /v1/clock/advance`` would and applies
   nothing itself, so every deadline is applied by the in-process worker (polling every 0.5 s), as on the
   real clock in production.
4. During the soak: ``--kills`` SIGKILLs of the server's process group and ``--pg-restarts`` PostgreSQL restarts
   (``pg_ctl restart``, ``-m fast`` then ``-m immediate``: the second is a crash and WAL recovery), at random
   instants, each after the service recovered from the previous fault. Recovery = from the fault until
   ``GET /healthz`` answers 200 (on the manual clock it reads the database).
5. Afterwards: the worker drains (no timer due at the clock's instant, no webhook delivery pending), then checks in SQL and with
   ``aftersales ledger audit``: every acknowledged write present (orders, shipments, deliveries, cases, case
   actions), the ledger audit clean (every transaction balanced, refunded ≤ paid per order, …),
   no refund paid twice (at most one refund per case in this workload, refunded_fen equal to the refunds' sum
   and ≤ paid, every refund settled), every deadline applied exactly once (no due timer left, no open case or
   pending group past its deadline, one system event per (case, action, due instant) and as many as the case
   recorded as fired, at most one G4 outcome per group and one group-failure refund per member), no user action
   applied twice, one webhook delivery per event, each delivered and received, in event order per case, and the
   service answering with no hand action. ``--self-check`` then breaks the database seven ways and checks that
   each is reported.

Output (``--out``, JSON): ``kills``, ``pg_restarts``, ``writes_acknowledged``, ``writes_found``,
``violations`` (must be 0), ``recover_seconds`` (p50/max after kills and after PostgreSQL restarts), and more.
Exit status 1 when there are violations (after writing the JSON).

Run: ``.venv/bin/python bench/soak.py --seconds 240 --kills 20 --pg-restarts 2`` (full) or
``--seconds 20 --kills 2 --pg-restarts 1`` (smoke).
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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from procs import stop_group  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "soak.json"
PG_BIN_ROOT = Path("/usr/lib/postgresql")
PLATFORM_KEY = "soak-platform-key-" + secrets.token_hex(16)
MERCHANTS = ("m-soak-a", "m-soak-b")
BUYERS = ("b-soak-1", "b-soak-2", "b-soak-3", "b-soak-4")
#: A policy with short durations (whole hours / days are the smallest units a policy has).
POLICY_OVERRIDES = {
    "group_wait_hours": 3, "merchant_response_hours": 6, "merchant_reminder_hours": [4, 1], "buyer_response_days": 1,
    "buyer_return_days": 1, "merchant_confirm_hours": 4, "return_auto_refund_days": 1, "merchant_ship_hours": 3,
    "buyer_confirm_days": 1, "platform_accept_hours": 2, "merchant_pay_hours": 2,
}
#: Workload flows and their weights (%).
FLOWS = {"refund_approved": 25, "refund_by_silence": 12, "return_completed": 15, "return_silent": 10,
         "return_shipped_silent": 10, "rejected_silent": 10, "group_fails": 8, "group_forms": 10}
#: The automatic actions whose events the system writes (actor ``system``), per case.
AUTO_KINDS = {"remind_merchant", "auto_approve", "close_unanswered", "lapse_offer", "close_buyer_overdue", "return_timeout",
              "ship_timeout", "auto_confirm_received", "flag_platform_overdue", "advance_compensation"}


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


# --- a private PostgreSQL cluster ----------------------------------------------------------------------------
class PgCluster:
    """initdb + pg_ctl as user postgres in ``tmp``; stopped (and its directory left to the caller) on exit."""

    def __init__(self, tmp: Path, port: int) -> None:
        versions = sorted((p for p in PG_BIN_ROOT.glob("*/bin/initdb")), key=lambda p: int(p.parent.parent.name))
        if not versions:
            raise RuntimeError(f"no PostgreSQL server binaries under {PG_BIN_ROOT}")
        self.bin = versions[-1].parent
        self.version = self.bin.parent.name
        self.tmp, self.port = tmp, port
        self.data, self.log = tmp / "pgdata", tmp / "postgresql.log"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/soak"
        self.started = False

    def _as_postgres(self, *cmd: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.tmp} -c listen_addresses=127.0.0.1"
        subprocess.run(self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                                         "-t", "60", "-o", options, *args), check=True, stdout=subprocess.DEVNULL)

    def __enter__(self) -> PgCluster:
        if os.geteuid() == 0:
            shutil.chown(self.tmp, user="postgres")
        subprocess.run(self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                                         "-E", "UTF8", "--no-instructions"), check=True, stdout=subprocess.DEVNULL)
        self._ctl("start")
        self.started = True
        subprocess.run(self._as_postgres(str(self.bin / "createdb"), "-h", str(self.tmp), "-p", str(self.port), "-U", "postgres",
                                         "soak"), check=True)
        return self

    def restart(self, mode: str) -> None:
        self._ctl("-m", mode, "restart")

    def __exit__(self, *exc: object) -> None:
        if self.started:
            try:
                self._ctl("-m", "immediate", "stop")
            except subprocess.CalledProcessError:
                pid_file = self.data / "postmaster.pid"
                if pid_file.exists():  # last resort: the postmaster we started, by its pid
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
            self.started = False


# --- the supervised server -----------------------------------------------------------------------------------
class Supervisor:
    """Runs ``aftersales serve`` in its own process group and starts it again whenever it dies (Restart=always)."""

    RESTART_SECONDS = 0.1

    def __init__(self, env: dict[str, str], port: int, log: Path, workers: int = 1) -> None:
        self.env, self.port, self.log, self.workers = env, port, log, workers
        self.url = f"http://127.0.0.1:{port}"
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.exits: Counter[int] = Counter()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        exe = Path(sys.executable).parent / "aftersales"
        cmd = [str(exe), "serve"] if exe.exists() else [sys.executable, "-m", "aftersales.cli", "serve"]
        with self.log.open("ab") as out:
            return subprocess.Popen([*cmd, "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)], env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, cwd=self.log.parent)

    def _run(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                if self.stopping.is_set():
                    return
                self.proc = self._spawn()
                self.starts += 1
            code = self.proc.wait()
            self.exits[code] += 1
            self.stopping.wait(self.RESTART_SECONDS)

    def start(self) -> None:
        self.thread.start()

    def kill(self) -> None:
        """SIGKILL the server's whole process group (uvicorn and the in-process worker thread die with it)."""
        with self.lock:
            proc = self.proc
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)  # dead before we look for the next one to answer

    def wait_healthy(self, timeout: float = 120.0) -> float:
        """Seconds until ``GET /healthz`` answers 200 (it reads the database on the manual clock)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return time.monotonic() - start
            time.sleep(0.05)
        raise RuntimeError(f"the server did not recover within {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                stop_group(self.proc)
        self.thread.join(30)


# --- the load generator (another process) --------------------------------------------------------------------
class Load:
    """Mixed load; every POST with an Idempotency-Key, retried with the same key until it has an answer."""

    GIVE_UP_SECONDS = 120.0

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg["seed"])
        self.prefix = cfg["prefix"]
        self.keys: dict[str, str] = cfg["keys"]
        self.stop_at = cfg["stop_at"]
        self.acks: list[dict[str, Any]] = []
        self.stats: Counter[str] = Counter()
        self.flows: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.errors_5xx_at: list[float] = []
        self.clock_now = datetime.fromisoformat(cfg["clock_start"])
        self.seq = 0

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def next_id(self, kind: str) -> str:
        self.seq += 1
        return f"{kind}-{self.prefix}-{self.seq}"

    async def pause(self, attempt: int) -> None:
        await asyncio.sleep(min(1.0, 0.05 * 2 ** min(attempt, 5)) * (0.5 + self.rng.random()))

    async def post(self, client: httpx.AsyncClient, who: str, path: str, body: Any = None) -> tuple[str, Any]:
        """("ok", json) for 2xx, ("applied", None) for "applied, response lost", ("refused", problem), ("lost", None)."""
        key = self.next_id("k")
        headers = {**self.auth(who), "Idempotency-Key": key}
        give_up = time.monotonic() + self.GIVE_UP_SECONDS
        attempt = 0
        while time.monotonic() < give_up:
            self.stats["post_attempts"] += 1
            if attempt:
                self.stats["post_retries"] += 1
            try:
                r = await client.post(path, json=body, headers=headers)
            except httpx.TransportError as exc:
                self.stats[f"transport_error:{type(exc).__name__}"] += 1
                attempt += 1
                await self.pause(attempt)
                continue
            if r.status_code >= 500:
                self.stats[f"http_{r.status_code}"] += 1
                self.errors_5xx_at.append(time.time())
                attempt += 1
                await self.pause(attempt)
                continue
            if r.headers.get("idempotent-replayed"):
                self.stats["replayed"] += 1
            if 200 <= r.status_code < 300:
                return "ok", r.json()
            problem = r.json() if r.headers.get("content-type", "").endswith("json") else {}
            kind = str(problem.get("type", "")).rsplit("/", 1)[-1]
            if r.status_code == 409 and kind == "idempotency-in-progress":
                self.stats["in_progress_409"] += 1
                attempt += 1
                await asyncio.sleep(0.5)
                continue
            if r.status_code == 409 and kind == "idempotency-applied":
                self.stats["applied_response_lost"] += 1
                return "applied", None
            return "refused", {"status": r.status_code, "type": kind, "rule": problem.get("rule"), "detail": problem.get("detail")}
        self.stats["writes_unresolved"] += 1
        return "lost", None

    async def get(self, client: httpx.AsyncClient, who: str, path: str) -> Any:
        for attempt in range(200):
            self.stats["reads"] += 1
            try:
                r = await client.get(path, headers=self.auth(who))
            except httpx.TransportError:
                self.stats["read_transport_errors"] += 1
                await self.pause(attempt + 1)
                continue
            if r.status_code >= 500:
                self.stats["read_5xx"] += 1
                self.errors_5xx_at.append(time.time())
                await self.pause(attempt + 1)
                continue
            return r.json() if r.status_code == 200 else None
        return None

    def ack(self, outcome: str, **what: Any) -> None:
        self.acks.append({"via": outcome, **what})

    def refused(self, what: str, answer: Any) -> None:
        self.refusals[f"{what}: {answer.get('status')} {answer.get('rule') or answer.get('type')}"] += 1

    # --- writes ---
    async def create_order(self, client: httpx.AsyncClient, merchant: str, buyer: str, shipped: bool, delivered: bool,
                           group: dict[str, Any] | None = None, order_id: str | None = None) -> str | None:
        oid = order_id or self.next_id("o")
        paid_at = (self.clock_now - timedelta(minutes=5)).isoformat()
        body: dict[str, Any] = {
            "id": oid, "merchant_id": merchant, "buyer_id": buyer, "paid_at": paid_at, "shipping_fee_fen": 600,
            "items": [{"sku": "tee", "title": "T-shirt", "category": "soak-apparel", "quantity": 2, "unit_price_fen": 2990},
                      {"sku": "cap", "title": "Cap", "category": "soak-apparel", "quantity": 1, "unit_price_fen": 1500}]}
        if group:
            body["group"] = group
        outcome, answer = await self.post(client, merchant, "/v1/orders", body)
        if outcome == "refused":
            self.refused("order", answer)
            return None
        if outcome == "lost":
            return None
        self.ack(outcome, kind="order", order_id=oid, merchant_id=merchant, buyer_id=buyer, group_id=(group or {}).get("id"))
        for step, wanted in (("ship", shipped), ("deliver", delivered)):
            if not wanted:
                continue
            payload = {"carrier": "SF", "tracking_no": f"SF{self.seq}"} if step == "ship" else None
            outcome, answer = await self.post(client, merchant, f"/v1/orders/{oid}/{step}", payload)
            if outcome in ("refused", "lost"):
                if outcome == "refused":
                    self.refused(step, answer)
                return None
            self.ack(outcome, kind=step, order_id=oid)
        return oid

    async def open_case(self, client: httpx.AsyncClient, buyer: str, oid: str, ctype: str, reason: str) -> str | None:
        body = {"order_id": oid, "type": ctype, "reason": reason, "description": "The seam came apart on the first wash"}
        outcome, answer = await self.post(client, buyer, "/v1/cases", body)
        if outcome == "refused":
            self.refused(f"open {ctype}", answer)
            return None
        if outcome == "lost":
            return None
        if outcome == "applied":  # applied, response lost: find the case the way a client would
            page = await self.get(client, buyer, f"/v1/cases?order_id={oid}")
            items = (page or {}).get("items", [])
            if not items:
                self.stats["applied_case_not_found"] += 1
                self.ack(outcome, kind="case", case_id=None, order_id=oid, type=ctype)
                return None
            answer = items[0]
        self.ack(outcome, kind="case", case_id=answer["id"], order_id=oid, type=ctype)
        return str(answer["id"])

    async def drive(self, client: httpx.AsyncClient, merchant: str, buyer: str, case_id: str,
                    plan: dict[str, tuple[str, str, dict[str, Any] | None]]) -> None:
        """Take the planned action for each status the case is in; stop (leaving it to the deadlines) otherwise."""
        done: set[str] = set()
        while True:
            await asyncio.sleep(self.rng.uniform(0, 0.3))
            case = await self.get(client, buyer, f"/v1/cases/{case_id}")
            if case is None or case["status"] not in plan or case["status"] in done:
                return
            status = case["status"]
            role, action, body = plan[status]
            who = merchant if role == "merchant" else buyer
            outcome, answer = await self.post(client, who, f"/v1/cases/{case_id}/{action}", body)
            done.add(status)
            if outcome == "refused":
                self.refused(action, answer)  # e.g. a deadline acted first (409)
                continue
            if outcome == "lost":
                return
            self.ack(outcome, kind="action", case_id=case_id, action=action, actor=role)

    async def flow(self, client: httpx.AsyncClient, name: str) -> None:
        merchant = self.rng.choice(MERCHANTS)
        buyer = self.rng.choice(BUYERS)
        approve = ("merchant", "approve", None)
        ship_return = ("buyer", "ship_return", {"carrier": "YTO", "tracking_no": f"YT{self.seq}"})
        if name in ("group_fails", "group_forms"):
            gid = self.next_id("g")
            size = 3 if name == "group_fails" else 2
            first = await self.create_order(client, merchant, buyer, False, False, group={"id": gid, "size": size})
            if first is None or name == "group_fails":
                return
            await asyncio.sleep(self.rng.uniform(0, 0.3))
            second = self.rng.choice([b for b in BUYERS if b != buyer])
            await self.create_order(client, merchant, second, False, False, group={"id": gid, "size": size})
            return
        returns = name.startswith("return") or name == "rejected_silent"
        oid = await self.create_order(client, merchant, buyer, shipped=returns, delivered=returns)
        if oid is None:
            return
        # M2: a valid no-reason return cannot be refused, a quality complaint can
        reason = "quality_problem" if name == "rejected_silent" else "no_reason"
        case_id = await self.open_case(client, buyer, oid, "return_refund" if returns else "refund_only", reason)
        if case_id is None:
            return
        plans: dict[str, dict[str, tuple[str, str, dict[str, Any] | None]]] = {
            "refund_approved": {"awaiting_merchant": approve},
            "refund_by_silence": {},  # M1 reminders, then auto-approval and the refund
            "return_completed": {"awaiting_merchant": approve, "awaiting_return_shipment": ship_return,
                                 "return_in_transit": ("merchant", "mark_return_delivered", None),
                                 "awaiting_merchant_receipt": ("merchant", "confirm_return", None)},
            "return_silent": {},  # M1 reminders and auto-approval, then M5 closes it (the buyer never ships)
            "return_shipped_silent": {"awaiting_merchant": approve, "awaiting_return_shipment": ship_return},  # M6
            "rejected_silent": {"awaiting_merchant": ("merchant", "reject", {"reason": "Worn, cannot accept"})},  # M2
        }
        await self.drive(client, merchant, buyer, case_id, plans[name])
        if self.rng.random() < 0.3:
            await self.get(client, buyer, f"/v1/cases/{case_id}/events")
            await self.get(client, buyer, f"/v1/orders/{oid}/after-sales-options")

    async def worker(self, client: httpx.AsyncClient) -> None:
        names, weights = list(FLOWS), list(FLOWS.values())
        while time.time() < self.stop_at:
            name = self.rng.choices(names, weights)[0]
            self.flows[name] += 1
            await self.flow(client, name)

    async def reader(self, client: httpx.AsyncClient) -> None:
        while time.time() < self.stop_at:
            merchant = self.rng.choice(MERCHANTS)
            await self.get(client, merchant, "/v1/cases?sort=deadline&limit=20")
            await self.get(client, "platform", "/v1/cases?status=closed&limit=20")
            clock = await self.get(client, "platform", "/v1/clock")  # orders are paid "now" on the platform's clock
            if clock:
                self.clock_now = max(self.clock_now, datetime.fromisoformat(clock["now"]))
            await asyncio.sleep(0.2)

    async def run(self) -> dict[str, Any]:
        cpu0, t0 = time.process_time(), time.perf_counter()
        limits = httpx.Limits(max_connections=self.cfg["concurrency"] + 4, max_keepalive_connections=self.cfg["concurrency"] + 4)
        async with httpx.AsyncClient(base_url=self.cfg["url"], limits=limits, timeout=30) as client:
            clock = await self.get(client, "platform", "/v1/clock")
            self.clock_now = datetime.fromisoformat(clock["now"])
            await asyncio.gather(self.reader(client),
                                 *(self.worker(client) for _ in range(self.cfg["concurrency"])))
        return {"acks": self.acks, "stats": dict(self.stats), "flows": dict(self.flows), "refusals": dict(self.refusals),
                "errors_5xx_at": self.errors_5xx_at, "cpu_seconds": time.process_time() - cpu0,
                "elapsed": time.perf_counter() - t0}


def _load_process(cfg: dict[str, Any], out: Any) -> None:
    out.put(asyncio.run(Load(cfg).run()))


# --- set-up, faults, checks ------------------------------------------------------------------------------------
class Receiver:
    """The webhook endpoint (in this process, which no fault touches): records every delivery in arrival order and
    answers 500 to a few (``fail_ratio``) so that retries happen too."""

    def __init__(self, fail_ratio: float, seed: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[tuple[int, str]] = []  # (event id, ordering key), in arrival order
        self.failed = 0
        self.lock = threading.Lock()
        rng = random.Random(seed)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    fail = rng.random() < fail_ratio
                    if fail:
                        receiver.failed += 1
                    else:
                        d = json.loads(body)["data"]
                        key = f"case:{d['case_id']}" if d["case_id"] else f"order:{d['order_id']}" if d["order_id"] else f"group:{d['group_id']}"
                        receiver.received.append((int(d["event_id"]), key))
                self.send_response(500 if fail else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def set_up(url: str, hook_url: str | None) -> dict[str, str]:
    keys = {"platform": PLATFORM_KEY}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {PLATFORM_KEY}"}, timeout=30) as c:
        r = c.put("/v1/categories/soak-apparel", json={"name": "Apparel", "no_reason_return": True, "statutory_exclusion": None})
        assert r.status_code in (200, 201), r.text
        for m in MERCHANTS:
            r = c.post("/v1/merchants", json={"id": m, "name": f"Shop {m}", "return_address": "1 Return Rd"})
            assert r.status_code == 201, r.text
        for role, subjects in (("merchant", MERCHANTS), ("buyer", BUYERS)):
            for subject in subjects:
                r = c.post("/v1/api-keys", json={"role": role, "subject_id": subject})
                assert r.status_code == 201, r.text
                keys[subject] = r.json()["key"]
        if hook_url:
            r = c.post("/v1/webhooks", json={"url": hook_url})  # every event of every shop
            assert r.status_code == 201, r.text
    return keys


class Ticker:
    """The platform's time passing: every 0.25 s, the manual clock is set to its start plus the real time elapsed
    times ``rate`` (``--sim-hours-per-second``), written where the server keeps it (``kv.clock_now``, the value
    ``POST /v1/clock/advance`` sets). Nothing is applied here: the in-process worker finds what fell due, exactly
    as it does on the real clock. While PostgreSQL is down the tick waits; the time it missed is not lost."""

    def __init__(self, url: str, start: datetime, rate: float) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(url, pool_pre_ping=True)
        self.start, self.rate = start, rate
        self.t0 = time.monotonic()
        self.stop = threading.Event()
        self.ticks = self.failures = 0
        self.thread = threading.Thread(target=self._run, name="ticker", daemon=True)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.t0) * self.rate * 3600)

    def _run(self) -> None:
        from sqlalchemy import text

        while not self.stop.wait(0.25):
            try:
                with self.engine.begin() as conn:
                    conn.execute(text("INSERT INTO kv (key, value) VALUES ('clock_now', :v) "
                                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                                 {"v": self.now().astimezone(UTC).isoformat()})
                self.ticks += 1
            except Exception:
                self.failures += 1

    def __enter__(self) -> Ticker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.engine.dispose()


def faults(sup: Supervisor, pg: PgCluster, args: argparse.Namespace, rng: random.Random, t0: float,
           done: list[dict[str, Any]], stop: threading.Event) -> None:
    """Kills and PostgreSQL restarts at random instants of the soak, each once the previous one has recovered."""
    kinds = ["kill"] * args.kills + ["pg"] * args.pg_restarts
    rng.shuffle(kinds)
    at = sorted(rng.uniform(0.05, 0.85) * args.seconds for _ in kinds)
    pg_modes = ["fast", "immediate"]
    for kind, when in zip(kinds, at, strict=True):
        while not stop.is_set() and time.monotonic() - t0 < when:
            stop.wait(0.05)
        if stop.is_set():
            return
        started = time.monotonic()
        entry: dict[str, Any] = {"kind": kind, "at_s": round(started - t0, 2)}
        if kind == "kill":
            sup.kill()
        else:
            entry["mode"] = pg_modes[sum(1 for d in done if d["kind"] == "pg") % len(pg_modes)]
            pg.restart(entry["mode"])
        sup.wait_healthy()
        entry["recover_s"] = round(time.monotonic() - started, 3)
        entry["wall"] = time.time()
        done.append(entry)
        print(f"  {entry['at_s']:7.1f} s  {kind}{' -m ' + entry['mode'] if kind == 'pg' else ''}: "
              f"answering again after {entry['recover_s']:.2f} s", flush=True)


def drain(engine: Any, timeout: float = 180.0) -> dict[str, Any]:
    """Wait until no timer is due at the clock's instant and no webhook delivery is pending (the worker applies and
    sends them). The clock stands still meanwhile, except that when the only deliveries left wait for a lease or a
    backoff in its future (a kill interrupted them, or the receiver answered 500), it is moved just past them."""
    from sqlalchemy import text

    start = time.monotonic()
    jumps, timers, pending = 0, -1, -1
    while time.monotonic() - start < timeout:
        with contextlib.suppress(Exception), engine.begin() as conn:
            now = _clock_now(conn)
            timers = int(conn.execute(text("SELECT count(*) FROM timers WHERE due_at <= :now"), {"now": now}).scalar_one())
            # due: what the worker can send now (due, and no earlier delivery of its case/order/group pending)
            pending, due, last = conn.execute(text(
                "SELECT count(*), count(*) FILTER (WHERE d.next_attempt_at <= :now AND NOT EXISTS ("
                "  SELECT 1 FROM webhook_deliveries e WHERE e.status = 'pending' AND e.subscription_id = d.subscription_id"
                "  AND e.ordering_key = d.ordering_key AND e.id < d.id)), max(d.next_attempt_at) "
                "FROM webhook_deliveries d WHERE d.status = 'pending'"), {"now": now}).one()
            # Events not yet fanned out into deliveries (the worker does it on its next pass) are pending too.
            pending += int(conn.execute(text("SELECT count(*) FROM webhook_outbox")).scalar_one())
            if timers == 0 and pending == 0:
                break
            if timers == 0 and due == 0:
                conn.execute(text("UPDATE kv SET value = :v WHERE key = 'clock_now'"),
                             {"v": (last.astimezone(UTC) + timedelta(seconds=1)).isoformat()})
                jumps += 1
        time.sleep(0.5)
    return {"seconds": round(time.monotonic() - start, 2), "timers_due_left": timers, "deliveries_pending_left": pending,
            "clock_moved_for_deliveries": jumps}


def _clock_now(conn: Any) -> datetime:
    from sqlalchemy import text

    value = conn.execute(text("SELECT value FROM kv WHERE key = 'clock_now'")).scalar_one_or_none()
    return datetime.fromisoformat(value) if value else datetime.now(UTC)


def verify(engine: Any, acks: list[dict[str, Any]], env: dict[str, str],
           received: list[tuple[int, str]], rate: float = 0.5, clock_start: datetime | None = None) -> tuple[dict[str, Any], list[str]]:
    """Every check of the brief; returns figures and the violations (each a sentence)."""
    from sqlalchemy import text

    v: list[str] = []
    with engine.connect() as conn:
        now = _clock_now(conn)
        orders = {r.id: r for r in conn.execute(text("SELECT id, merchant_id, buyer_id, group_id, status, paid_fen, refunded_fen FROM orders"))}
        cases = {r.id: r for r in conn.execute(text("SELECT id, order_id, type, status, close_reason, due_at, due_action, state FROM cases"))}
        groups = {r.id: r for r in conn.execute(text("SELECT id, status, expires_at FROM groups"))}
        refunds = list(conn.execute(text("SELECT key, order_id, case_id, kind, status, refund_fen FROM refunds")))
        events = list(conn.execute(text("SELECT order_id, case_id, group_id, kind, actor, data, recorded_at FROM events")))
        due_timers = int(conn.execute(text("SELECT count(*) FROM timers WHERE due_at <= :now"), {"now": now}).scalar_one())
        timers_left = int(conn.execute(text("SELECT count(*) FROM timers")).scalar_one())
        deliveries = list(conn.execute(text("SELECT event_id, status, attempts FROM webhook_deliveries")))
        subscribed = bool(conn.execute(text("SELECT count(*) FROM webhook_subscriptions")).scalar_one())
        event_ids = [int(i) for i in conn.execute(text("SELECT id FROM events")).scalars()] if subscribed else []

    def data(e: Any) -> dict[str, Any]:
        return e.data if isinstance(e.data, dict) else json.loads(e.data or "{}")

    case_events: Counter[tuple[str, str, str]] = Counter()
    order_events: Counter[tuple[str, str]] = Counter()
    group_events: Counter[tuple[str, str]] = Counter()
    auto_events: Counter[tuple[str, str, str]] = Counter()
    auto_per_case: Counter[str] = Counter()
    lags: list[float] = []  # how late each automatic action was applied, in platform seconds
    latest: list[tuple[float, str, datetime, datetime]] = []
    for e in events:
        if e.case_id is not None and e.actor in ("merchant", "buyer", "platform"):
            case_events[(e.case_id, e.kind, e.actor)] += 1
        elif e.case_id is None and e.order_id is not None:
            order_events[(e.order_id, e.kind)] += 1
        elif e.order_id is None and e.group_id is not None:
            group_events[(e.group_id, e.kind)] += 1
        if e.case_id is not None and e.actor == "system" and e.kind in AUTO_KINDS:
            auto_events[(e.case_id, e.kind, str(data(e).get("due_at")))] += 1
            auto_per_case[e.case_id] += 1
            if data(e).get("due_at"):
                due_at = datetime.fromisoformat(data(e)["due_at"])
                lags.append((e.recorded_at - due_at).total_seconds())
                latest.append((lags[-1], e.kind, due_at, e.recorded_at))

    # 1. every acknowledged write is there
    found = 0
    for a in acks:
        kind, ok = a["kind"], False
        if kind == "order":
            o = orders.get(a["order_id"])
            ok = o is not None and o.merchant_id == a["merchant_id"] and o.buyer_id == a["buyer_id"] and o.group_id == a["group_id"]
        elif kind in ("ship", "deliver"):
            ok = order_events[(a["order_id"], "order_shipped" if kind == "ship" else "order_delivered")] == 1
        elif kind == "case":
            c = cases.get(a["case_id"]) if a["case_id"] else next((c for c in cases.values() if c.order_id == a["order_id"]), None)
            ok = c is not None and c.order_id == a["order_id"] and c.type == a["type"]
        elif kind == "action":
            ok = case_events[(a["case_id"], a["action"], a["actor"])] >= 1
        if ok:
            found += 1
        else:
            v.append(f"acknowledged write missing: {a}")

    # 2. the ledger (D2): `aftersales ledger audit`
    audit = subprocess.run([str(Path(sys.executable).parent / "aftersales"), "ledger", "audit"], env=env, capture_output=True,
                           text=True, cwd=ROOT, timeout=300)
    if audit.returncode != 0:
        v.append(f"ledger audit exit {audit.returncode}: {(audit.stdout + audit.stderr)[-1500:]}")

    # 3. no refund paid twice; refunded ≤ paid
    per_case = Counter(r.case_id for r in refunds if r.case_id is not None)
    v += [f"case {cid} has {n} refunds (this workload allows one)" for cid, n in per_case.items() if n > 1]
    per_order = Counter(r.key for r in refunds if r.kind == "group_failure")
    v += [f"refund key {k} twice" for k, n in per_order.items() if n > 1]
    v += [f"refund {r.key} is {r.status}, not settled" for r in refunds if r.status != "settled"]
    sums: Counter[str] = Counter()
    for r in refunds:
        sums[r.order_id] += int(r.refund_fen)
    for o in orders.values():
        if o.refunded_fen > o.paid_fen:
            v.append(f"order {o.id}: refunded {o.refunded_fen} > paid {o.paid_fen}")
        if sums[o.id] != o.refunded_fen:
            v.append(f"order {o.id}: refunds sum to {sums[o.id]}, refunded_fen says {o.refunded_fen}")

    # 4. every deadline applied exactly once
    if due_timers:
        v.append(f"{due_timers} timers due at {now.isoformat()} were never applied")
    for c in cases.values():
        if c.status != "closed" and c.due_at is not None and c.due_at.astimezone(UTC) <= now:
            v.append(f"case {c.id} is {c.status} past its {c.due_action} deadline {c.due_at.isoformat()}")
        state = c.state if isinstance(c.state, dict) else json.loads(c.state)
        fired = len(state.get("fired", []))
        if fired != auto_per_case[c.id]:
            v.append(f"case {c.id}: {fired} automatic actions recorded as fired, {auto_per_case[c.id]} events")
    v += [f"automatic action {k} applied {n} times" for k, n in auto_events.items() if n > 1]
    for g in groups.values():
        if g.status == "pending" and g.expires_at.astimezone(UTC) <= now:
            v.append(f"group {g.id} still pending after it expired at {g.expires_at.isoformat()}")
        outcomes = group_events[(g.id, "group_failed")] + group_events[(g.id, "group_formed")]
        if outcomes > 1:
            v.append(f"group {g.id} has {outcomes} outcomes (formed/failed events)")
        if g.status == "failed":
            for o in (o for o in orders.values() if o.group_id == g.id):
                if o.status != "cancelled" or o.refunded_fen != o.paid_fen:
                    v.append(f"order {o.id} of failed group {g.id}: {o.status}, refunded {o.refunded_fen} of {o.paid_fen}")

    # 5. no user action applied twice (each is taken at most once per case in this workload), orders likewise
    v += [f"case {k[0]}: {k[1]} by {k[2]} applied {n} times" for k, n in case_events.items() if n > 1]
    v += [f"order {k[0]}: {k[1]} recorded {n} times" for k, n in order_events.items() if n > 1]

    # 6. webhooks (outbox): one delivery per event, all delivered, each received, in order per case/order/group
    per_event = Counter(int(d.event_id) for d in deliveries)
    v += [f"event {i} has {per_event[i]} webhook deliveries (one subscription)" for i in event_ids if per_event[i] != 1]
    v += [f"webhook delivery of event {d.event_id} still pending after {d.attempts} attempts" for d in deliveries if d.status != "delivered"]
    got = {i for i, _ in received}
    v += [f"webhook of event {d.event_id} marked delivered, never received" for d in deliveries
          if d.status == "delivered" and int(d.event_id) not in got]
    first: dict[str, list[int]] = {}
    seen: set[int] = set()
    for event_id, key in received:
        if event_id not in seen:
            seen.add(event_id)
            first.setdefault(key, []).append(event_id)
    v += [f"webhooks of {key} arrived out of order: {ids[:20]}" for key, ids in first.items() if ids != sorted(ids)]

    closed = Counter(f"{c.type}:{c.close_reason or c.status}" for c in cases.values())
    figures = {
        "writes_found": found,
        "orders": len(orders), "cases": len(cases), "groups": dict(Counter(g.status for g in groups.values())),
        "case_outcomes": dict(sorted(closed.items())),
        "refunds": len(refunds), "refunded_fen": sum(int(r.refund_fen) for r in refunds),
        "automatic_actions_applied": dict(sorted(Counter(k[1] for k in auto_events).items())),
        "group_outcomes": dict(Counter(k[1] for k, n in group_events.items() if k[1] in ("group_failed", "group_formed"))),
        # Lateness of the automatic actions in real seconds (platform seconds / the clock's speed), outages included.
        "deadline_lateness_real_s": {"p50": _pct([x / (rate * 3600) for x in lags], 0.5),
                                     "p99": _pct([x / (rate * 3600) for x in lags], 0.99),
                                     "max": round(max(lags) / (rate * 3600), 3) if lags else None},
        # The five latest, in real seconds since the load started (compare with "faults"; outages included).
        "latest_automatic_actions": [
            {"kind": kind, "due_s": round((due - clock_start).total_seconds() / (rate * 3600), 1),
             "applied_s": round((at - clock_start).total_seconds() / (rate * 3600), 1)}
            for _, kind, due, at in sorted(latest, key=lambda x: x[0], reverse=True)[:5]] if clock_start else None,
        "timers_due_left": due_timers, "timers_pending_future": timers_left - due_timers,
        "clock_now": now.isoformat(),
        "ledger_audit": "clean" if audit.returncode == 0 else "FAILED",
        "webhooks": {"deliveries": len(deliveries), "received": len(received), "received_twice_or_more": len(received) - len(got),
                     "attempts": sum(int(d.attempts) for d in deliveries)},
    }
    return figures, v


def self_check(engine: Any, acks: list[dict[str, Any]], env: dict[str, str], received: list[tuple[int, str]]) -> dict[str, bool]:
    """Break the (stopped) soak's database in seven ways and check that :func:`verify` reports each one: the soak's
    checks can fail. Returns {injected fault: detected}."""
    from sqlalchemy import text

    injected: dict[str, str] = {}  # what was broken → the words its violation must contain
    with engine.begin() as conn:
        order = next((a for a in acks if a["kind"] == "order"), None)
        if order:
            conn.execute(text("UPDATE orders SET buyer_id = buyer_id || '-x' WHERE id = :id"), {"id": order["order_id"]})
            injected["an acknowledged order changed"] = "acknowledged write missing"
        columns = "order_id, case_id, group_id, kind, actor, at, rules, from_status, to_status, data, recorded_at"
        auto = conn.execute(text("SELECT id FROM events WHERE actor = 'system' AND kind = 'auto_approve' LIMIT 1")).scalar()
        if auto is not None:
            conn.execute(text(f"INSERT INTO events ({columns}) SELECT {columns} FROM events WHERE id = :id"), {"id": auto})
            injected["a deadline applied twice"] = "automatic action"
        user = conn.execute(text("SELECT id FROM events WHERE actor = 'merchant' AND kind = 'approve' LIMIT 1")).scalar()
        if user is not None:
            conn.execute(text(f"INSERT INTO events ({columns}) SELECT {columns} FROM events WHERE id = :id"), {"id": user})
            injected["a case action applied twice"] = "approve by merchant applied 2 times"
        conn.execute(text("INSERT INTO timers (subject, subject_id, action, stage, rule, due_at) "
                          "VALUES ('case', 'cs_none', 'auto_approve', 0, 'M1', '2000-01-01T00:00:00+00:00')"))
        injected["a deadline never applied"] = "timers due at"
        refund = conn.execute(text("SELECT key FROM refunds WHERE case_id IS NOT NULL LIMIT 1")).scalar()
        if refund is not None:
            cols = "order_id, case_id, kind, payer, rule, amount_fen, refund_fen, return_shipping_fen, status, created_at, settled_at"
            conn.execute(text(f"INSERT INTO refunds (key, {cols}) SELECT key || '-again', {cols} FROM refunds WHERE key = :k"),
                         {"k": refund})
            injected["a refund paid twice"] = "refunds (this workload allows one)"
        entry = conn.execute(text("SELECT min(id) FROM ledger_entries")).scalar()
        if entry is not None:
            conn.execute(text("UPDATE ledger_entries SET debit_fen = debit_fen + 1 WHERE id = :id"), {"id": entry})
            injected["an unbalanced ledger transaction"] = "ledger audit exit"
        delivery = conn.execute(text("SELECT min(id) FROM webhook_deliveries")).scalar()
        if delivery is not None:
            conn.execute(text("UPDATE webhook_deliveries SET status = 'pending' WHERE id = :id"), {"id": delivery})
            injected["a webhook never delivered"] = "still pending"
    _figures, violations = verify(engine, acks, env, received)
    return {what: any(words in line for line in violations) for what, words in injected.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="length of the load (faults fall within it)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the server's process group")
    parser.add_argument("--pg-restarts", type=int, default=2, help="PostgreSQL restarts (-m fast, then -m immediate)")
    parser.add_argument("--concurrency", type=int, default=6, help="concurrent flows of the load generator")
    parser.add_argument("--sim-hours-per-second", type=float, default=0.5, help="platform (manual clock) hours per real second")
    parser.add_argument("--server-workers", type=int, default=1,
                        help="uvicorn worker processes (each runs the deadline worker: they race for the same timers)")
    parser.add_argument("--in-flight-seconds", type=float, default=5.0,
                        help="AFTERSALES_IDEMPOTENCY_IN_FLIGHT_SECONDS: when a retry may take over a killed request's claim")
    parser.add_argument("--no-webhooks", action="store_true", help="no webhook subscription (to compare)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--pg-port", type=int, default=55432, help="port of the private cluster (another free one if taken)")
    parser.add_argument("--self-check", action="store_true",
                        help="afterwards, break the database in six ways and check that the checks report each")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the server and PostgreSQL logs into this directory")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    rng = random.Random(seed)

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (a background job)
    sys.path.insert(0, str(ROOT / "src"))
    from sqlalchemy import create_engine

    from aftersales.domain import policy as policy_mod
    from aftersales.store.db import make_engine
    from aftersales.store.migrate import upgrade

    if not any(PG_BIN_ROOT.glob("*/bin/initdb")):
        why = f"no PostgreSQL server binaries (initdb, pg_ctl) under {PG_BIN_ROOT}"
        if os.environ.get("CI") == "true":
            sys.exit(f"soak: {why}, and CI=true")
        print(f"soak skipped: {why}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"benchmark": "soak", "skipped": why}, indent=2) + "\n")
        return
    tmp = Path(tempfile.mkdtemp(prefix="aftersales-soak-"))
    loader: Any = None
    sup: Supervisor | None = None
    ticker: Ticker | None = None
    receiver: Receiver | None = None
    try:
        with PgCluster(tmp, _free_port(args.pg_port)) as pg:
            engine = make_engine(pg.url)
            upgrade(engine)
            engine.dispose()
            policy_file = tmp / "policy.toml"
            policy_file.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in POLICY_OVERRIDES.items()))
            policy_mod.load(policy_file)  # refuse to start on an invalid policy
            port = _free_port(0)
            clock_start = datetime.now(UTC).replace(microsecond=0)
            env = {**os.environ, "AFTERSALES_ENV": "test", "AFTERSALES_DATABASE_URL": pg.url, "AFTERSALES_CLOCK": "manual",
                   "AFTERSALES_CLOCK_START": clock_start.isoformat(), "AFTERSALES_POLICY_FILE": str(policy_file),
                   "AFTERSALES_BOOTSTRAP_PLATFORM_KEY": PLATFORM_KEY, "AFTERSALES_PORT": str(port),
                   "AFTERSALES_WORKER_POLL_SECONDS": "0.5", "AFTERSALES_DATA_DIR": str(tmp / "data"),
                   # A claim left by a killed server can be taken over after 5 s instead of 2 min (the takeover is
                   # safe either way: a request whose claim was taken over cannot commit, service/context.py).
                   "AFTERSALES_IDEMPOTENCY_IN_FLIGHT_SECONDS": str(args.in_flight_seconds),
                   # The webhook receiver is in this process, on 127.0.0.1: a private target (SEC1).
                   "AFTERSALES_WEBHOOK_ALLOW_PRIVATE": "true"}
            env.pop("AFTERSALES_DATABASE_SCHEMA", None)
            sup = Supervisor(env, port, tmp / "server.log", args.server_workers)
            started = time.monotonic()
            sup.start()
            sup.wait_healthy(60)
            # The raw limit of recovery, same machine, same run: the server's cold start, from spawning it to its
            # first answer, with nothing else to do.
            cold_start = time.monotonic() - started
            receiver = Receiver(0.03, seed).__enter__()
            keys = set_up(sup.url, None if args.no_webhooks else receiver.url)
            print(f"soak: {args.seconds:.0f} s, {args.kills} kills, {args.pg_restarts} PostgreSQL restarts "
                  f"(private PostgreSQL {pg.version} on port {pg.port}), seed {seed}", flush=True)
            spawn = mp.get_context("spawn")
            out = spawn.Queue()
            ticker = Ticker(pg.url, clock_start, args.sim_hours_per_second).__enter__()
            t0 = time.monotonic()
            cfg = {"url": sup.url, "keys": keys, "stop_at": time.time() + args.seconds, "seed": seed, "prefix": secrets.token_hex(3),
                   "concurrency": args.concurrency, "sim_hours_per_second": args.sim_hours_per_second,
                   "clock_start": clock_start.isoformat()}
            loader = spawn.Process(target=_load_process, args=(cfg, out), daemon=True)
            loader.start()
            done: list[dict[str, Any]] = []
            stop = threading.Event()
            fault_thread = threading.Thread(target=faults, args=(sup, pg, args, rng, t0, done, stop), daemon=True)
            fault_thread.start()
            result = out.get(timeout=args.seconds + Load.GIVE_UP_SECONDS + 300)
            loader.join(60)
            stop.set()
            fault_thread.join(180)
            load_seconds = time.monotonic() - t0
            ticker.__exit__()  # the clock stops: what is due now must all be applied

            # After: the same supervised server, never touched by hand, must answer and drain what is due.
            sup.wait_healthy(120)
            check = create_engine(pg.url)
            drained = drain(check)
            figures, violations = verify(check, result["acks"], env, receiver.received, args.sim_hours_per_second,
                                         clock_start)
            health = httpx.get(f"{sup.url}/healthz", timeout=10).status_code
            if health != 200:
                violations.append(f"/healthz answered {health} after the soak")
            sup.stop()
            checked = self_check(check, result["acks"], env, receiver.received) if args.self_check else {}
            if not all(checked.values()):
                violations.append(f"self-check: a broken database passed the checks: {checked}")
            check.dispose()
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for name in ("server.log", "postgresql.log"):
                    if (tmp / name).exists():
                        shutil.copy(tmp / name, args.keep_logs / f"soak-{name}")
            server_log = (tmp / "server.log").read_text(errors="replace")
    finally:
        if loader is not None and loader.is_alive():
            loader.terminate()
        if ticker is not None:
            ticker.__exit__()
        if receiver is not None:
            receiver.__exit__()
        if sup is not None:
            sup.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    kills = [d for d in done if d["kind"] == "kill"]
    restarts = [d for d in done if d["kind"] == "pg"]
    fault_walls = [d["wall"] - d["recover_s"] for d in done]
    unexplained = [t for t in result["errors_5xx_at"] if not any(w - 1 <= t <= w + d["recover_s"] + 10
                                                                  for w, d in zip(fault_walls, done, strict=True))]
    acks = result["acks"]
    report = {
        "benchmark": "soak", "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "postgresql": pg.version},
        "settings": {"seconds": args.seconds, "kills": args.kills, "pg_restarts": args.pg_restarts, "concurrency": args.concurrency,
                     "sim_hours_per_second": args.sim_hours_per_second, "seed": seed, "policy": POLICY_OVERRIDES,
                     "clock": "manual, ticking at sim_hours_per_second", "idempotency_in_flight_seconds": args.in_flight_seconds,
                     "server_workers": args.server_workers},
        "kills": len(kills), "pg_restarts": len(restarts), "server_starts": sup.starts if sup else 0,
        "writes_acknowledged": len(acks), "writes_found": figures["writes_found"],
        "writes_applied_response_lost": sum(1 for a in acks if a["via"] == "applied"),
        "writes_unresolved": result["stats"].get("writes_unresolved", 0),
        "writes_by_kind": dict(Counter(a["kind"] for a in acks)),
        "violations": len(violations), "violation_details": violations[:50],
        "recover_seconds": {
            "kill": {"p50": _pct([d["recover_s"] for d in kills], 0.5), "max": max((d["recover_s"] for d in kills), default=None)},
            "pg_restart": {"p50": _pct([d["recover_s"] for d in restarts], 0.5),
                           "max": max((d["recover_s"] for d in restarts), default=None)},
        },
        "cold_start_s": round(cold_start, 3),
        "recover_ratio_to_cold_start": round(rec_p50 / cold_start, 2) if (rec_p50 := _pct([d["recover_s"] for d in kills], 0.5)) else None,
        "faults": [{k: v for k, v in d.items() if k != "wall"} for d in done],
        "drain": drained,
        "webhook_receiver_500s": receiver.failed if receiver else 0,
        "clock": {"start": clock_start.isoformat(), "ticks": ticker.ticks if ticker else 0,
                  "ticks_failed": ticker.failures if ticker else 0},
        "load": {"seconds": round(load_seconds, 1), "flows": result["flows"], "refused_by_rules": result["refusals"],
                 "requests": {k: v for k, v in sorted(result["stats"].items())},
                 "generator_cpu_s": round(result["cpu_seconds"], 2)},
        "unexplained_5xx": len(unexplained),
        "self_check": checked or None,
        "server_tracebacks_logged": server_log.count("Traceback"),
        **{k: v for k, v in figures.items() if k != "writes_found"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    rec = report["recover_seconds"]
    print(f"  kills {report['kills']}, PostgreSQL restarts {report['pg_restarts']}, writes acknowledged "
          f"{report['writes_acknowledged']}, found {report['writes_found']}, violations {report['violations']}; "
          f"recovery after a kill p50 {rec['kill']['p50']} s, max {rec['kill']['max']} s; "
          f"deadlines applied {sum(figures['automatic_actions_applied'].values())}", flush=True)
    for line in violations[:20]:
        print(f"  VIOLATION: {line}", flush=True)
    print(f"written to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    if violations:
        sys.exit(1)


if __name__ == "__main__":
    main()
