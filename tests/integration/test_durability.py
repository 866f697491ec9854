"""Durability: what a real server acknowledged survives a SIGKILL (SQLite file and PostgreSQL schema).

A uvicorn server runs as a separate process group over the test database. Writer threads stream
create order → buyer opens refund_only → merchant approves cycles, every POST with its own Idempotency-Key, and
note each write acknowledged with a 2xx. In the middle of that stream the server is killed with SIGKILL (no
shutdown, no flush), then started again over the same database. Then:

- every acknowledged order exists, with the data that was sent;
- every acknowledged case exists, in the acknowledged status or a later one (an unacknowledged approve that had
  committed may have moved it on), and a closed/refunded case has exactly one refund, for the whole order;
- a case that is still awaiting the merchant has no refund; no order has more refunds than cases;
- the writes that were in flight at the kill may or may not have happened, but never in part, and retrying
  them with their Idempotency-Key does not fail with a 5xx nor do anything twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

PLATFORM_KEY = "test-platform-key-" + "x" * 24  # tests/conftest.py: the server's bootstrap key (Database.env())
WRITERS = 3
MIN_CYCLES = 15  # acknowledged approvals before the kill
START_TIMEOUT = 60.0
IN_FLIGHT_SECONDS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``uvicorn aftersales.api.server:app --factory`` in its own process group, logging to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "aftersales.api.server:app", "--factory", "--host", "127.0.0.1",
                 "--port", str(port), "--log-level", "warning", "--no-access-log"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self.url
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /healthz in {START_TIMEOUT}s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole process group, and reap it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        self.proc = None


@pytest.fixture
def server(database: Any, tmp_path: Path) -> Iterator[Server]:
    # A claim left by the killed server may be taken over by a retry after 2 s (default 2 minutes).
    env = {**os.environ, **database.env(), "AFTERSALES_WORKER_IN_PROCESS": "false",
           "AFTERSALES_IDEMPOTENCY_IN_FLIGHT_SECONDS": str(IN_FLIGHT_SECONDS)}
    srv = Server(env, tmp_path / "server.log")
    try:
        yield srv
    finally:
        srv.kill()


@dataclass
class Ledger:
    """What the writers sent and what the server acknowledged."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # acknowledged (201) order bodies
    cases: dict[str, str] = field(default_factory=dict)  # case id → order id, acknowledged (201)
    approved: set[str] = field(default_factory=set)  # case ids whose approve was acknowledged (200)
    in_flight: list[tuple[str, str, Any, str, str]] = field(default_factory=list)  # (method path, key, body, who, order)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _order(order_id: str) -> dict[str, Any]:
    return {"id": order_id, "merchant_id": "mA", "buyer_id": "bX", "paid_at": "2026-03-01T01:00:00+00:00",
            "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999}]}


def _writer(n: int, url: str, keys: dict[str, str], ledger: Ledger, stop: threading.Event) -> None:
    """Cycles until ``stop`` or until the server goes away; a request cut by the kill is noted as in flight."""
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while not stop.is_set():
            i += 1
            oid = f"w{n}-{i}"
            steps: list[tuple[str, Any, str]] = [("/v1/orders", _order(oid), "platform"),
                                                ("/v1/cases", {"order_id": oid, "type": "refund_only", "reason": "no_reason"}, "buyer"),
                                                ("", None, "merchant")]
            case_id = ""
            for path, body, who in steps:
                path = path or f"/v1/cases/{case_id}/approve"
                key = uuid.uuid4().hex
                headers = {"Authorization": f"Bearer {keys[who]}", "Idempotency-Key": key}
                try:
                    r = client.post(path, json=body, headers=headers)
                except httpx.TransportError:
                    with ledger.lock:
                        ledger.in_flight.append(("POST " + path, key, body, who, oid))
                    return
                if r.status_code >= 300:
                    with ledger.lock:
                        ledger.errors.append(f"POST {path}: {r.status_code} {r.text[:300]}")
                    return
                with ledger.lock:
                    if path == "/v1/orders":
                        ledger.orders[oid] = body
                    elif path == "/v1/cases":
                        case_id = r.json()["id"]
                        ledger.cases[case_id] = oid
                    elif r.json()["status"] == "closed":
                        ledger.approved.add(case_id)
                    else:
                        ledger.errors.append(f"approve acknowledged but not closed: {r.text[:300]}")
                        return


def test_acknowledged_writes_survive_sigkill(server: Server) -> None:
    url = server.start()
    keys = {"platform": PLATFORM_KEY}
    with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {PLATFORM_KEY}"}) as c:
        assert c.post("/v1/merchants", json={"id": "mA", "name": "Shop A", "return_address": "1 Return Rd"}).status_code == 201
        assert c.put("/v1/categories/apparel", json={"name": "Apparel", "no_reason_return": True}).status_code in (200, 201)
        for who, role, subject in (("merchant", "merchant", "mA"), ("buyer", "buyer", "bX")):
            r = c.post("/v1/api-keys", json={"role": role, "subject_id": subject})
            assert r.status_code == 201, r.text
            keys[who] = r.json()["key"]

    ledger, stop = Ledger(), threading.Event()
    threads = [threading.Thread(target=_writer, args=(n, url, keys, ledger, stop), daemon=True) for n in range(WRITERS)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 120
    while len(ledger.approved) < MIN_CYCLES and time.monotonic() < deadline and any(th.is_alive() for th in threads):
        time.sleep(0.02)
    assert not ledger.errors, ledger.errors
    assert len(ledger.approved) >= MIN_CYCLES, f"only {len(ledger.approved)} cycles before the deadline"
    server.kill()  # mid-stream: the writers are all somewhere in a request
    stop.set()
    for th in threads:
        th.join(60)
        assert not th.is_alive(), "a writer did not stop after the kill"
    assert not ledger.errors, ledger.errors

    url = server.start()  # same database, new process
    with httpx.Client(base_url=url, timeout=30) as c:
        def get(path: str, who: str = "platform") -> httpx.Response:
            return c.get(path, headers={"Authorization": f"Bearer {keys[who]}"})

        # The keys themselves were acknowledged writes.
        for who in ("merchant", "buyer"):
            assert get("/v1/cases?limit=1", who).status_code == 200, f"the {who} key was lost"

        for oid, body in ledger.orders.items():
            r = get(f"/v1/orders/{oid}")
            assert r.status_code == 200, f"acknowledged order {oid} is gone: {r.status_code} {r.text}"
            order = r.json()
            assert (order["merchant_id"], order["buyer_id"], order["paid_fen"]) == ("mA", "bX", 2499), order
            assert [i["sku"] for i in order["items"]] == [i["sku"] for i in body["items"]]

        for cid, oid in ledger.cases.items():
            r = get(f"/v1/cases/{cid}")
            assert r.status_code == 200, f"acknowledged case {cid} is gone: {r.status_code} {r.text}"
            case = r.json()
            assert case["order_id"] == oid
            order = get(f"/v1/orders/{oid}").json()
            refunds = [f for f in order["refunds"] if f["case_id"] == cid]
            if cid in ledger.approved:
                assert (case["status"], case["close_reason"]) == ("closed", "refunded"), case
            else:  # opened; its approve was in flight or never sent
                assert case["status"] in ("awaiting_merchant", "closed"), case
            if case["status"] == "closed":
                assert case["close_reason"] == "refunded", case
                assert len(refunds) == 1, f"case {cid} has {len(refunds)} refunds: {refunds}"
                assert refunds[0]["amount_fen"] == order["refunded_fen"] == order["paid_fen"] == 2499, order
            else:
                assert refunds == [] and order["refunded_fen"] == 0, order

        # In flight at the kill: applied or not, never in part; retried with its Idempotency-Key (once the killed
        # server's claim may be taken over) it is applied exactly once, or answered as applied already.
        assert ledger.in_flight, "the kill hit no request (the writers were idle?)"
        outcomes = []
        for what, key, body, who, oid in ledger.in_flight:
            path = what.split(" ", 1)[1]
            deadline = time.monotonic() + IN_FLIGHT_SECONDS + 20
            while True:
                r = c.post(path, json=body, headers={"Authorization": f"Bearer {keys[who]}", "Idempotency-Key": key})
                kind = r.json().get("type", "") if r.status_code >= 400 else ""
                if not kind.endswith("/idempotency-in-progress") or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            outcomes.append((what, r.status_code, kind))
            assert r.status_code in (200, 201) or kind.endswith("/idempotency-applied"), \
                f"retrying {what} after the restart: {r.status_code} {r.text}"
            r = get(f"/v1/orders/{oid}")
            assert r.status_code == 200, f"order {oid} missing after retrying {what}: {outcomes[-1]}"
            order = r.json()
            if what != "POST /v1/orders":
                assert len(order["case_ids"]) == 1, order
            if what.endswith("/approve"):
                case = get(path.removesuffix("/approve")).json()
                assert (case["status"], case["close_reason"]) == ("closed", "refunded"), case
                assert len(order["refunds"]) == 1 and order["refunded_fen"] == order["paid_fen"], order
            assert len(order["case_ids"]) <= 1 and len(order["refunds"]) <= 1, order
            assert order["refunded_fen"] == sum(f["amount_fen"] for f in order["refunds"]), order
        print(f"acknowledged before the kill: {len(ledger.orders)} orders, {len(ledger.cases)} cases, "
              f"{len(ledger.approved)} approvals; in flight, retried: {outcomes}")
