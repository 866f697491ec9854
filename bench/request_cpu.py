"""B1's cycle through the ASGI application alone: the server's CPU per request, without a network or a client.

The three steps of ``bench/http_cycle.py``'s ``cycle`` workload — ``POST /v1/orders`` (merchant key),
``POST /v1/cases`` (buyer key, ``refund_only``/``no_reason``), ``POST /v1/cases/{id}/approve`` (merchant key),
no Idempotency-Key unless ``--idempotency`` — and ``GET /healthz`` are sent to the application built as
``aftersales serve`` builds it (``api.server.app``'s middleware and routes, no in-process worker) as raw ASGI
messages from one asyncio loop in this process: no HTTP parsing, no client library, so ``time.process_time`` per
request is the application's own CPU (its thread pool included; PostgreSQL's work runs in its own processes and is
not counted). What it shows does not depend on how busy the machine is, unlike a rate.

``--inline`` runs the synchronous endpoints on the event loop's thread instead of the thread pool, so that a
one-thread profiler sees the whole request; ``--profile FILE.html`` (implies ``--inline``) writes a pyinstrument
profile of the measured cycles (wall time: on PostgreSQL mostly the driver waiting), ``--cprofile FILE`` a cProfile
one with a CPU clock (``python -m pstats FILE``; it inflates function-call-heavy code), and ``--spy DIR`` runs the
measure under ``py-spy`` (``--inline``, the requests' samples only) and writes ``DIR/inprocess-<db>.txt``: samples by
layer and the inclusive share of the functions of the request's path (``store_cycle.summarise``).

Run: ``.venv/bin/python bench/request_cpu.py [--db sqlite,postgresql] [--cycles 300] [--inline]
[--profile out.html]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_cycle import PLATFORM_KEY, database, order_body

STEPS = ("order", "case", "approve")


class Asgi:
    """Requests to an ASGI application as a server would make them (one body message, the whole answer kept)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        raw = [(b"host", b"127.0.0.1"), *((k.lower().encode(), v.encode()) for k, v in headers.items())]
        if body:
            raw += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "root_path": "", "headers": raw, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
                 "state": self.state}
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 0
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)

    state: dict[str, Any] = {}


class Cycle:
    def __init__(self, asgi: Asgi, idempotency: bool) -> None:
        self.asgi, self.idempotency = asgi, idempotency
        self.n = 0
        self.paid_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        self.keys: dict[str, str] = {}

    async def set_up(self) -> None:
        platform = {"authorization": f"Bearer {PLATFORM_KEY}"}
        status, _ = await self.asgi.request("POST", "/v1/merchants", platform, json.dumps(
            {"id": "mA", "name": "Shop", "return_address": "1 Return Rd"}).encode())
        assert status == 201, status
        status, _ = await self.asgi.request("PUT", "/v1/categories/apparel", platform, json.dumps(
            {"name": "Apparel", "no_reason_return": True}).encode())
        assert status in (200, 201), status
        for who, subject in (("merchant", "mA"), ("buyer", "bX")):
            status, out = await self.asgi.request("POST", "/v1/api-keys", platform,
                                                  json.dumps({"role": who, "subject_id": subject}).encode())
            assert status == 201, out
            self.keys[who] = json.loads(out)["key"]

    def h(self, who: str) -> dict[str, str]:
        headers = {"authorization": f"Bearer {self.keys[who]}"}
        if self.idempotency:
            headers["idempotency-key"] = os.urandom(8).hex()
        return headers

    async def step(self, name: str, state: dict[str, str]) -> None:
        if name == "order":
            self.n += 1
            oid = f"o-{self.n}"
            body = order_body(oid, self.paid_at)
            status, out = await self.asgi.request("POST", "/v1/orders", self.h("merchant"), json.dumps(body).encode())
            assert status == 201, out
            state["order"] = oid
        elif name == "case":
            body = {"order_id": state["order"], "type": "refund_only", "reason": "no_reason"}
            status, out = await self.asgi.request("POST", "/v1/cases", self.h("buyer"), json.dumps(body).encode())
            assert status == 201, out
            state["case"] = json.loads(out)["id"]
        elif name == "approve":
            status, out = await self.asgi.request("POST", f"/v1/cases/{state['case']}/approve", self.h("merchant"))
            assert status == 200, out
            done = json.loads(out)
            assert done["status"] == "closed" and done["close_reason"] == "refunded", done
        else:
            status, out = await self.asgi.request("GET", "/healthz", {})
            assert status == 200, out


def _inline_thread_pool() -> None:
    """Run what FastAPI/Starlette send to the thread pool on the calling thread (a one-thread profiler sees it)."""
    import anyio.to_thread
    import fastapi.concurrency
    import fastapi.dependencies.utils
    import fastapi.routing
    import starlette.concurrency

    async def inline(func: Any, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    async def run_sync(func: Any, *args: Any, **_: Any) -> Any:
        return func(*args)

    for module in (starlette.concurrency, fastapi.concurrency, fastapi.routing, fastapi.dependencies.utils):
        if hasattr(module, "run_in_threadpool"):
            module.run_in_threadpool = inline  # type: ignore[attr-defined]
    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]
    import aftersales.api.app as api_app

    api_app.run_in_threadpool = inline  # type: ignore[attr-defined]


async def _measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    from aftersales.api import server
    from aftersales.config import Settings

    with database(kind) as (url, schema):
        env = {"AFTERSALES_ENV": "test", "AFTERSALES_DATABASE_URL": url, "AFTERSALES_BOOTSTRAP_PLATFORM_KEY": PLATFORM_KEY,
               "AFTERSALES_WORKER_IN_PROCESS": "false"}
        if schema:
            env["AFTERSALES_DATABASE_SCHEMA"] = schema
        os.environ.update(env)
        app = server.app()
        settings = Settings()
        asgi = Asgi(app)
        cpu: Counter[str] = Counter()
        async with app.router.lifespan_context(app):
            cycle = Cycle(asgi, args.idempotency)
            await cycle.set_up()
            for _ in range(20):  # warm up: caches, prepared statements, the pool
                state: dict[str, str] = {}
                for name in (*STEPS, "healthz"):
                    await cycle.step(name, state)
            profiler: Any = None
            if args.profile:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0002, async_mode="disabled")
                profiler.start()
            elif args.cprofile:
                import cProfile

                profiler = cProfile.Profile(time.process_time)
                profiler.enable()
            for _ in range(args.cycles):
                state = {}
                for name in (*STEPS, "healthz"):
                    start = time.process_time()
                    await cycle.step(name, state)
                    cpu[name] += time.process_time() - start
            if args.profile:
                profiler.stop()
                Path(args.profile.replace("{db}", kind)).write_text(profiler.output_html())
                Path(args.profile.replace("{db}", kind).removesuffix(".html") + ".txt").write_text(
                    profiler.output_text(unicode=True, show_all=False))
            elif args.cprofile:
                profiler.disable()
                profiler.dump_stats(args.cprofile.replace("{db}", kind))
        _ = settings
    return {"database": kind, "cycles": args.cycles, "inline": args.inline,
            "cpu_ms": {name: round(1000 * cpu[name] / args.cycles, 3) for name in (*STEPS, "healthz")},
            "cycle_cpu_ms": round(1000 * sum(cpu[n] for n in STEPS) / args.cycles, 3)}


#: The functions whose inclusive share a --spy profile lists.
WATCH = ("solve_dependencies", "_IncludedRouter._match", "get_principal", "run_endpoint_function", "UnitOfWork.__enter__",
         "UnitOfWork.commit", "Tracker.flush", "Batch.write", "Tracker._load", "stamp", "fan_out", "Connection.execute",
         "ClauseElement._compile_w_cache", "HasCacheKey._generate_cache_key", "Connection._execute_context",
         "DefaultDialect.do_commit", "Engine.connect", "DefaultDialect._do_ping_w_event", "execute", "executemany",
         "insert_returning", "Plan.params", "encode", "from_dict", "Lean.response")


def spy(args: argparse.Namespace) -> int:
    import subprocess

    from store_cycle import summarise

    args.spy.mkdir(parents=True, exist_ok=True)
    for kind in args.db.split(","):
        stacks = args.spy / f"inprocess-{kind}.stacks"
        subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "--rate", "500", "--function", "--format",
                        "raw", "-o", str(stacks), "--", sys.executable, __file__, "--db", kind, "--cycles", str(args.cycles),
                        "--inline"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summarise(stacks, args.spy / f"inprocess-{kind}.txt",
                  f"{kind}: {args.cycles} cycles (order → case → approve) and /healthz, in-process ASGI, one thread",
                  watch=WATCH, within="Cycle.step", path="a request's path")
        stacks.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--idempotency", action="store_true", help="send an Idempotency-Key with every POST")
    parser.add_argument("--inline", action="store_true", help="run the thread pool's work on the loop's thread")
    parser.add_argument("--profile", default=None, help="pyinstrument HTML profile ({db} is replaced)")
    parser.add_argument("--cprofile", default=None, help="cProfile stats file ({db} is replaced)")
    parser.add_argument("--spy", type=Path, default=None, help="py-spy text profiles per database in this directory")
    args = parser.parse_args(argv)
    if args.spy is not None:
        return spy(args)
    if args.profile or args.cprofile:
        args.inline = True
    if args.inline:
        _inline_thread_pool()
    import logging

    logging.getLogger("aftersales.security").setLevel(logging.ERROR)
    with contextlib.suppress(Exception):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    for kind in args.db.split(","):
        res = asyncio.run(_measure(kind, args))
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
