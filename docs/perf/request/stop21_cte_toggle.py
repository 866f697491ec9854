# Measured for stop 21 (2026-12-07): the flush combined into data-modifying CTEs (stop21-cte-flush-experiment.diff applied to 2e0c684) on / off in one process.
# It patches store internals of that tree and does not run on later code (the experiment was not kept).
"""Same process, alternate blocks: combining flush on / off (PostgreSQL), CPU per step, inline and pool."""
import asyncio, os, sys, time, json
from collections import Counter
sys.path.insert(0, "bench")
import request_cpu as rc
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
from store_cycle import PLATFORM_KEY, database
from aftersales.store import driver
orig = driver.pipeline
MODE = {"combine": True}
def patched(conn, what="pipeline", *, combine=False):
    return orig(conn, what, combine=combine and MODE["combine"])
driver.pipeline = patched
if "--inline" in sys.argv: rc._inline_thread_pool()
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
                MODE["combine"] = r % 2 == 0
                p0 = pgcpu()
                for _ in range(100):
                    state = {}
                    for name in (*rc.STEPS, "healthz"):
                        s = time.process_time()
                        await cycle.step(name, state)
                        if r >= 2: cpu[MODE["combine"]][name] += time.process_time() - s
                    if r >= 2: n[MODE["combine"]] += 1
                if r >= 2: cpu[MODE["combine"]]["pg"] += pgcpu() - p0
        for m in (False, True):
            print("combine" if m else "separate", {k: round(v / n[m] * 1000, 3) for k, v in cpu[m].items()})
asyncio.run(main())
