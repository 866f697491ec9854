"""The B1 cycle in-process: SQL statements and CPU time per step (issue 13, the store's fast path).

The three steps of ``bench/http_cycle.py``'s ``cycle`` workload — ``POST /v1/orders`` (merchant key),
``POST /v1/cases`` (buyer key, ``refund_only``/``no_reason``), ``POST /v1/cases/{id}/approve`` (merchant key) — each
with an ``Idempotency-Key`` as a real client sends it, run through FastAPI's ``TestClient`` in this process, over a
fresh database (a SQLite file, or a schema of the local PostgreSQL dropped afterwards).

What is measured does not depend on how busy the machine is:

- **statements** per step: every statement the application sends through SQLAlchemy (``before_cursor_execute``;
  an executemany counts once: it is one prepared statement, one pipeline on psycopg), SQLite's ``BEGIN IMMEDIATE``
  included, and the commits (``commit`` events) counted apart;
- **CPU ms** per step: ``time.process_time`` of this process over ``--cycles`` cycles (the client's share included,
  the database server's excluded: PostgreSQL's work runs in its own process).

``--statements`` prints the statements of one cycle; ``--profile DIR`` runs the measure again under py-spy (every
thread: the application runs in TestClient's portal thread and its thread pool, which an in-thread profiler such as
pyinstrument does not see) and writes ``DIR/cycle-<db>.txt``: where the samples go, by layer and by function
(:func:`summarise`), the raw collapsed stacks next to it (``DIR/cycle-<db>.stacks``, not committed).

Run: ``.venv/bin/python bench/store_cycle.py [--db sqlite,postgresql] [--cycles 200] [--statements] [--profile DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PG_URL = os.environ.get("AFTERSALES_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PLATFORM_KEY = "bench-platform-key-" + "x" * 24
STEPS = ("order", "case", "approve")


class StatementCounter:
    """Counts what an engine sends: statements (executemany once) and commits, per label."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.statements: Counter[str] = Counter()
        self.commits: Counter[str] = Counter()
        self.label = "setup"
        self.log: list[tuple[str, str]] = []
        self.keep_log = False

        @event.listens_for(engine, "before_cursor_execute")
        def _stmt(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
            self.statements[self.label] += 1
            if self.keep_log:
                self.log.append((self.label, ("[many] " if executemany else "") + " ".join(statement.split())))

        @event.listens_for(engine, "commit")
        def _commit(conn: Any) -> None:
            self.commits[self.label] += 1


@contextlib.contextmanager
def database(kind: str) -> Iterator[tuple[str, str | None]]:
    """(url, schema) of a fresh migrated database."""
    from aftersales.store.db import make_engine
    from aftersales.store.migrate import migrated_schema, upgrade

    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/cycle.db"
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            yield url, None
        return
    with migrated_schema(PG_URL, f"cycle_{secrets.token_hex(4)}") as schema:
        yield PG_URL, schema


def order_body(oid: str, paid_at: str) -> dict[str, Any]:
    """B1's order: merchant mA, buyer bX, two lines of the category ``apparel``."""
    return {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": paid_at, "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 2, "unit_price_fen": 1999},
                      {"sku": "s2", "title": "Socks", "category": "apparel", "quantity": 1, "unit_price_fen": 500}]}


class Cycle:
    """A TestClient over the application with the merchant's and the buyer's keys."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.n = 0
        self.paid_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        platform = {"Authorization": f"Bearer {PLATFORM_KEY}"}
        assert client.post("/v1/merchants", json={"id": "mA", "name": "Shop", "return_address": "1 Return Rd"},
                           headers=platform).status_code == 201
        assert client.put("/v1/categories/apparel", json={"name": "Apparel", "no_reason_return": True},
                          headers=platform).status_code in (200, 201)
        self.keys = {}
        for who, subject in (("merchant", "mA"), ("buyer", "bX")):
            r = client.post("/v1/api-keys", json={"role": who, "subject_id": subject}, headers=platform)
            assert r.status_code == 201, r.text
            self.keys[who] = r.json()["key"]

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}", "Idempotency-Key": secrets.token_hex(8)}

    def step(self, name: str, state: dict[str, str]) -> None:
        if name == "order":
            self.n += 1
            oid = f"o-{self.n}"
            body = order_body(oid, self.paid_at)
            r = self.client.post("/v1/orders", json=body, headers=self.h("merchant"))
            assert r.status_code == 201, r.text
            state["order"] = oid
        elif name == "case":
            r = self.client.post("/v1/cases", json={"order_id": state["order"], "type": "refund_only", "reason": "no_reason"},
                                 headers=self.h("buyer"))
            assert r.status_code == 201, r.text
            state["case"] = r.json()["id"]
        else:
            r = self.client.post(f"/v1/cases/{state['case']}/approve", headers=self.h("merchant"))
            assert r.status_code == 200, r.text
            done = r.json()
            assert done["status"] == "closed" and done["close_reason"] == "refunded", done


def measure(kind: str, cycles: int, *, show: bool) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from aftersales.api.app import build_context, create_app
    from aftersales.config import Settings

    with database(kind) as (url, schema):
        settings = Settings(env="test", database_url=url, database_schema=schema, bootstrap_platform_key=PLATFORM_KEY,
                            worker_in_process=False)
        ctx = build_context(settings)
        counter = StatementCounter(ctx.engine)
        app = create_app(settings, ctx)
        with TestClient(app) as client:
            cycle = Cycle(client)
            for _ in range(3):  # warm up: caches, prepared statements, the pool
                state: dict[str, str] = {}
                for name in STEPS:
                    cycle.step(name, state)
            counter.statements.clear()
            counter.commits.clear()
            counter.keep_log = show
            cpu: Counter[str] = Counter()
            for _ in range(cycles):
                state = {}
                for name in STEPS:
                    counter.label = name
                    start = time.process_time()
                    cycle.step(name, state)
                    cpu[name] += time.process_time() - start
                counter.keep_log = False
        ctx.engine.dispose()
    if show:
        print(f"--- {kind}: the statements of one cycle")
        for label, stmt in counter.log:
            print(f"{label:8} {stmt[:220]}")
    return {"database": kind, "cycles": cycles,
            "steps": {name: {"statements": counter.statements[name] / cycles, "commits": counter.commits[name] / cycles,
                             "cpu_ms": round(1000 * cpu[name] / cycles, 2)} for name in STEPS},
            "cycle": {"statements": sum(counter.statements[n] for n in STEPS) / cycles,
                      "commits": sum(counter.commits[n] for n in STEPS) / cycles,
                      "cpu_ms": round(1000 * sum(cpu.values()) / cycles, 2)}}


#: Layers of a sample, by the file of its innermost frame that has one (first match wins).
LAYERS = (("SQLAlchemy: SQL compilation, cache keys", ("sqlalchemy/sql/",)),
          ("SQLAlchemy: execution, results, pool", ("sqlalchemy/",)),
          ("driver (psycopg: sending, and waiting for the database's answer)", ("psycopg", "sqlite3")),
          ("aftersales.store (codec included)", ("aftersales/store/",)),
          ("aftersales.domain", ("aftersales/domain/", "aftersales/policy/")),
          ("aftersales.service", ("aftersales/service/",)),
          ("aftersales.api / web (middleware, routes)", ("aftersales/api/", "aftersales/web/", "aftersales/i18n")),
          ("pydantic (validation, serialisation)", ("pydantic",)),
          ("FastAPI / Starlette / anyio", ("fastapi/", "starlette/", "anyio/")),
          ("JSON", ("json/", "orjson")),
          ("TestClient (the client side: httpx)", ("httpx/", "h11")),
          ("thread hand-offs (anyio portal, thread pool wake-ups)", ("_write_to_self", "threading", "concurrent")),
          ("Python: asyncio, other", ("",)))
#: Samples left out: the set-up (migrations, imports, the app's creation), an event loop waiting in its selector and
#: pool threads waiting for work (idle, which py-spy does not always tell from a system call).
SKIP = ("alembic", "<module>", "Cycle.__init__", "create_app", "EpollSelector.select", "Queue.get (")
#: Functions whose inclusive share is listed (the cycle's path through the application).
WATCH = ("Idempotency.__call__", "Idempotency._claim", "Idempotency._finish", "resolve_key", "UnitOfWork.__enter__",
         "UnitOfWork.commit", "UnitOfWork.__exit__", "Tracker.flush", "Tracker._save_order", "_Batch.write", "write",
         "Tracker._append_events", "fan_out", "Tracker.load_orders", "Tracker._load", "Tracker.order_for_case",
         "Tracker.get_order_of_case", "from_dict", "encode_instance", "encode", "stamp", "categories", "merchant",
         "order_policy", "case_view", "open_case", "act", "create_order", "route_answer.<locals>.answer", "stored_form",
         "ClauseElement._compile_w_cache", "HasCacheKey._generate_cache_key", "Connection._execute_context",
         "Connection.commit", "serialize_response", "run_endpoint_function", "solve_dependencies")


def summarise(stacks: Path, out: Path, title: str, *, watch: tuple[str, ...] = WATCH, within: str | None = None,
              path: str = "the cycle's path") -> None:
    """A text profile from py-spy's collapsed stacks (``--format raw --function``): samples by layer (the innermost
    frame's file) and the inclusive share of the functions of ``watch``; samples of the set-up (migrations,
    imports) left out — with ``within``, every sample outside that function."""
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or (f";{within} (" not in stack if within is not None else any(skip in stack for skip in SKIP)):
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        inner = next((f for f in reversed(frames) if "(" in f and "/" in f), frames[-1])
        if "_write_to_self" in frames[-1]:
            inner = frames[-1]
        layers[next(name for name, marks in LAYERS if any(m in inner for m in marks))] += count
        for name in {f.split(" (")[0] for f in frames}:
            if name in watch:
                inclusive[name] += count
    lines = [title, f"samples: {total} (py-spy, every thread, idle excluded)", "", "by layer (innermost frame's file):"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in layers.most_common()]
    lines += ["", f"inclusive, functions of {path}:"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common()]
    out.write_text("\n".join(lines) + "\n")


def profile(kind: str, cycles: int, where: Path) -> None:
    import subprocess

    where.mkdir(parents=True, exist_ok=True)
    stacks = where / f"cycle-{kind}.stacks"
    spy = Path(sys.executable).parent / "py-spy"
    subprocess.run([str(spy), "record", "--rate", "250", "--function", "--format", "raw", "-o", str(stacks), "--",
                    sys.executable, __file__, "--db", kind, "--cycles", str(cycles)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    summarise(stacks, where / f"cycle-{kind}.txt", f"{kind}: {cycles} cycles (order → case → approve), in-process")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--statements", action="store_true", help="print the statements of one cycle")
    parser.add_argument("--profile", type=Path, default=None, help="write a py-spy profile per database here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.profile is not None:
        for kind in args.db.split(","):
            profile(kind, args.cycles, args.profile)
        return 0
    results = [measure(kind, args.cycles, show=args.statements) for kind in args.db.split(",")]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'database':11} {'step':8} {'statements':>10} {'commits':>8} {'CPU ms':>8}")
    for res in results:
        for name, row in [*res["steps"].items(), ("cycle", res["cycle"])]:
            print(f"{res['database']:11} {name:8} {row['statements']:10.1f} {row['commits']:8.1f} {row['cpu_ms']:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
