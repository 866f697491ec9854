"""The framework's own CPU per request: B1's hot routes with their service calls replaced by canned answers.

``bench/request_cpu.py`` measures whole requests (the store and the database included); this measures what is left
when the service answers at once — routing, dependencies and parameters, body validation, the middleware, the
thread hop into a synchronous endpoint and the answer's serialisation — for ``POST /v1/orders``, ``POST /v1/cases``,
``POST /v1/cases/{id}/approve`` and ``GET /healthz``, sent as raw ASGI messages (``request_cpu.Asgi``) to the
application ``aftersales serve`` builds, over a SQLite file. The canned answers are the real views of an order and a
case made first through the same application. ``--inline`` runs the thread pool's work on the loop's thread (no
thread hop: what is left is the framework's Python alone).

Run: ``.venv/bin/python bench/framework_cpu.py [--requests 3000] [--inline]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import request_cpu
from store_cycle import PLATFORM_KEY, database, order_body


async def _measure(requests: int) -> dict[str, float]:
    from aftersales.api import server
    from aftersales.service import cases as case_service
    from aftersales.service import orders

    with database("sqlite") as (url, _):
        os.environ.update({"AFTERSALES_ENV": "test", "AFTERSALES_DATABASE_URL": url,
                           "AFTERSALES_BOOTSTRAP_PLATFORM_KEY": PLATFORM_KEY, "AFTERSALES_WORKER_IN_PROCESS": "false"})
        app = server.app()
        asgi = request_cpu.Asgi(app)
        async with app.router.lifespan_context(app):
            cycle = request_cpu.Cycle(asgi, False)
            await cycle.set_up()
            state: dict[str, str] = {}
            for name in request_cpu.STEPS:
                await cycle.step(name, state)
            merchant = {"authorization": f"Bearer {cycle.keys['merchant']}"}
            buyer = {"authorization": f"Bearer {cycle.keys['buyer']}"}
            order = json.loads((await asgi.request("GET", f"/v1/orders/{state['order']}", merchant))[1])
            case = json.loads((await asgi.request("GET", f"/v1/cases/{state['case']}", merchant))[1])
            orders.create_order = lambda *a, **k: order
            case_service.open_case = lambda *a, **k: case
            case_service.act = lambda *a, **k: case
            sent: dict[str, tuple[str, str, dict[str, str], bytes, int]] = {
                "order": ("POST", "/v1/orders", merchant, json.dumps(order_body("o-x", cycle.paid_at)).encode(), 201),
                "case": ("POST", "/v1/cases", buyer, json.dumps(
                    {"order_id": state["order"], "type": "refund_only", "reason": "no_reason"}).encode(), 201),
                "approve": ("POST", f"/v1/cases/{state['case']}/approve", merchant, b"", 200),
                "healthz": ("GET", "/healthz", {}, b"", 200),
            }
            out: dict[str, float] = {}
            for name, (method, path, headers, body, want) in sent.items():
                for _ in range(200):
                    status, answer = await asgi.request(method, path, headers, body)
                    assert status == want, (status, answer)
                start = time.process_time()
                for _ in range(requests):
                    await asgi.request(method, path, headers, body)
                out[name] = round(1e6 * (time.process_time() - start) / requests, 1)
            return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--inline", action="store_true", help="run the thread pool's work on the loop's thread")
    args = parser.parse_args(argv)
    if args.inline:
        request_cpu._inline_thread_pool()
    logging.getLogger("aftersales.security").setLevel(logging.ERROR)
    result: dict[str, Any] = {"inline": args.inline, "cpu_us_per_request": asyncio.run(_measure(args.requests))}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
