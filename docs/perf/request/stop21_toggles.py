# Measured for stop 21 (2026-12-07) against commit ae211eb: it monkeypatches store internals of that commit and may not run on later code.
# Run: .venv/bin/python docs/perf/request/stop21_toggles.py  (ROUNDS=30; PostgreSQL at AFTERSALES_TEST_DATABASE_URL)
"""Same process, alternate blocks of 100 cycles: this session's three store changes on / off (PostgreSQL)."""
import asyncio, os, sys, time
from collections import Counter
sys.path.insert(0, "bench")
import request_cpu as rc
from store_cycle import PLATFORM_KEY, database
from aftersales.store import webhooks, terms as terms_store, repositories as repo, driver
NEW = {"on": True}
orig_committed = terms_store._committed
terms_store._committed = lambda conn: orig_committed(conn) if NEW["on"] else {}
orig_known = terms_store.known_mark
class _T:  # webhooks' view of the terms module: no mark known → the one question (the old path)
    def __getattr__(self, k): return getattr(terms_store, k)
    def known_mark(self, conn): return orig_known(conn) if NEW["on"] else None
webhooks.terms_store = _T()
orig_mot = repo.merchant_and_order_taken
def mot(conn, m, o):
    if NEW["on"]: return orig_mot(conn, m, o)
    return repo.merchant(conn, m), driver.execute(conn, repo._ORDER_EXISTS, {"order_id": o}).first() is not None
repo.merchant_and_order_taken = mot
if "--inline" in sys.argv: rc._inline_thread_pool()
def pgcpu():
    tot = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit(): continue
        try:
            if open(f"/proc/{pid}/comm").read().strip() != "postgres": continue
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            tot += int(f[11]) + int(f[12])
        except OSError: pass
    return tot / os.sysconf("SC_CLK_TCK")
async def main():
    from aftersales.api import server
    with database("postgresql") as (url, schema):
        os.environ.update({"AFTERSALES_ENV": "test", "AFTERSALES_DATABASE_URL": url, "AFTERSALES_BOOTSTRAP_PLATFORM_KEY": PLATFORM_KEY,
               "AFTERSALES_WORKER_IN_PROCESS": "false", "AFTERSALES_DATABASE_SCHEMA": schema})
        app = server.app()
        asgi = rc.Asgi(app)
        cpu = {True: Counter(), False: Counter()}; n = Counter()
        async with app.router.lifespan_context(app):
            cycle = rc.Cycle(asgi, False)
            await cycle.set_up()
            for r in range(int(os.environ.get("ROUNDS", "24"))):
                NEW["on"] = r % 2 == 1
                p0 = pgcpu()
                for _ in range(100):
                    state = {}
                    for name in (*rc.STEPS, "healthz"):
                        s = time.process_time()
                        await cycle.step(name, state)
                        if r >= 2: cpu[NEW["on"]][name] += time.process_time() - s
                    if r >= 2: n[NEW["on"]] += 1
                if r >= 2: cpu[NEW["on"]]["pg"] += pgcpu() - p0
        out = {}
        for m in (False, True):
            d = {k: round(v / n[m] * 1000, 3) for k, v in cpu[m].items()}
            d["refund_total"] = round(d["case"] + d["approve"] + d["pg"] * 2 / 3, 3)
            d["cycle_total"] = round(d["order"] + d["case"] + d["approve"] + d["pg"], 3)
            print("new " if m else "old ", d, flush=True)
asyncio.run(main())
