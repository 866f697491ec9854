"""B4 / issue 7: `aftersales import orders` of N paid orders, end to end, against the raw limit of the database.

Not a test. Run: ``.venv/bin/python bench/import_orders.py --orders 1000000 --db both``.

For each database (a fresh SQLite file; a fresh schema of the local PostgreSQL, dropped afterwards):

* a CSV of ``--orders`` orders is generated once (1–3 item lines each, about a fifth of them group orders in
  groups of 2–3 whose members pay within a few hours of each other — a few groups stay pending —, five merchants,
  paid over the last 30 days in time order);
* the database is migrated and the merchants and categories created, then the real command runs in a subprocess
  (``.venv/bin/aftersales import orders FILE``, the database given by ``AFTERSALES_DATABASE_URL`` /
  ``AFTERSALES_DATABASE_SCHEMA``, as an operator would); we time it from start to exit and read its peak RSS
  (``wait4``); the rows written are counted and the ledger checked (every payment transaction balanced);
* **raw limit**: every row the import wrote (orders, their search terms, groups, timers, ledger transactions and
  entries, events) is
  written again into a second fresh database, directly through the driver, in ONE transaction — COPY on
  PostgreSQL (from files dumped beforehand), ``executemany`` on SQLite with the importer's page cache size — timing
  only the writes and the commit.
  Our figure is reported as a ratio to it (orders/s over orders/s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from aftersales.domain import policy as policy_mod  # noqa: E402
from aftersales.importer import CSV_COLUMNS, SQLITE_CACHE_KIB  # noqa: E402
from aftersales.service import setup  # noqa: E402
from aftersales.service.context import PLATFORM, Clock, Context  # noqa: E402
from aftersales.store import tables as t  # noqa: E402
from aftersales.store.db import make_engine  # noqa: E402
from aftersales.store.migrate import upgrade  # noqa: E402
from aftersales.testing import ensure_merchant  # noqa: E402

PG = os.environ.get("AFTERSALES_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MERCHANTS = [f"m-{i}" for i in range(1, 6)]
#: Tables an import writes, in an order that satisfies their foreign keys.
TABLES = ("groups", "orders", "search_terms", "timers", "ledger_transactions", "ledger_entries", "events")
CATALOGUE = [("apparel", "T-shirt, cotton", 3900), ("apparel", "Down jacket", 29900), ("electronics", "USB-C cable 1 m", 1290),
             ("electronics", "Bluetooth earbuds", 15900), ("food", "Dried mango 500 g", 2590), ("home", "Bath towel set", 8800),
             ("books", "Notebook A5, 3 pack", 1500), ("beauty", "Sunscreen SPF50", 6900)]


def generate(path: Path, n: int, seed: int = 7) -> dict[str, int]:
    """Write a CSV of ``n`` orders; returns the counts it holds."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    start = now - timedelta(days=30)
    step = (now - start).total_seconds() / max(n, 1)
    lines = 0
    groups = 0
    group_orders = 0
    # open groups: [group id, merchant, size, members still to come, paid_at of the opener]
    pending: list[list[Any]] = []
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(",".join(CSV_COLUMNS) + "\n")
        for i in range(n):
            paid = start + timedelta(seconds=i * step)
            group = ""
            size = ""
            auto = ""
            merchant = MERCHANTS[rng.randrange(len(MERCHANTS))]
            r = rng.random()
            # A group takes members for 12 hours (its G1 window is 24 h): at small sizes one order follows another by
            # minutes, and a member must never come after the group expired.
            pending = [g for g in pending if (paid - g[4]).total_seconds() < 12 * 3600]
            if pending and r < 0.12:  # a member of an open group (paid within hours of its opener)
                g = pending[rng.randrange(min(len(pending), 8))]
                group, merchant, size = g[0], g[1], str(g[2])
                g[3] -= 1
                if g[3] == 0:
                    pending.remove(g)
                group_orders += 1
            elif r < 0.20:  # opens a group
                groups += 1
                gsize = rng.choice((2, 2, 3))
                group, size = f"g-{groups:07d}", str(gsize)
                auto = "true" if rng.random() < 0.3 else ""
                pending.append([group, merchant, gsize, gsize - 1, paid])
                group_orders += 1
            oid = f"o-{i:08d}"
            buyer = f"b-{rng.randrange(n // 3 + 1):07d}"
            fee = ("0", "0", "500", "800")[rng.randrange(4)]
            insured = "true" if rng.random() < 0.25 else ""
            k = rng.choice((1, 1, 1, 2, 2, 3))
            for j, (cat, title, price) in enumerate(rng.sample(CATALOGUE, k)):
                sku = f"sku-{cat}-{j}"
                qty = str(rng.choice((1, 1, 1, 2, 3)))
                first = j == 0
                f.write(",".join((oid, merchant if first else "", buyer if first else "", paid.isoformat() if first else "",
                                  fee if first else "", insured if first else "", sku, f'"{title}"', cat, qty, str(price),
                                  "", group if first else "", size if first else "", auto if first else "")) + "\n")
                lines += 1
    return {"orders": n, "lines": lines, "groups": groups, "group_orders": group_orders}


def fresh(kind: str, tmp: Path, name: str) -> tuple[Any, dict[str, str], Any]:
    """A fresh, migrated database with the merchants: (engine, environment for the CLI, cleanup)."""
    if kind == "sqlite":
        db = tmp / f"{name}.db"
        url = f"sqlite:///{db}"
        engine = make_engine(url)
        env = {"AFTERSALES_DATABASE_URL": url}
        cleanup = None
    else:
        schema = f"bench_import_{name}_{os.getpid()}"
        admin = create_engine(PG)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"'))
        engine = make_engine(PG, schema=schema)
        env = {"AFTERSALES_DATABASE_URL": PG, "AFTERSALES_DATABASE_SCHEMA": schema}

        def cleanup() -> None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
    upgrade(engine)
    ctx = Context(engine, policy_mod.load(None), Clock(manual=False))
    for m in MERCHANTS:
        ensure_merchant(ctx, m, datetime.now(UTC) - timedelta(days=400))
    for code in sorted({cat for cat, _, _ in CATALOGUE}):  # E4: the import refuses items of unknown categories
        setup.put_category(ctx, PLATFORM, code=code, name=code.capitalize(), no_reason_return=True,
                           statutory_exclusion=None, after_sales_days=None, warranty_days=None)
    return engine, env, cleanup


#: The console script's own code (``aftersales.cli:app``), which also reports, as it exits, the CPU time of the
#: importing process alone and of the processes it started (builders), so that the serial part shows apart.
_COMMAND = ("import atexit, json, resource, sys\n"
            "def _cpu():\n"
            "    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "    print('BENCH-CPU ' + json.dumps([own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime]), file=sys.stderr)\n"
            "atexit.register(_cpu)\n"
            "from aftersales.cli import app\n"
            "sys.argv[0] = 'aftersales'\n"
            "sys.exit(app())\n")


def run_import(csv_path: Path, env: dict[str, str], profile: tuple[str, Path] | None = None) -> dict[str, Any]:
    """The real command in a subprocess: wall time from start to exit, its CPU time (the importing process alone, and
    with the builder processes it started) and peak RSS. With ``profile`` (format, file), under py-spy (every thread
    and process, 250 samples/s, without stopping them: py-spy's default pauses garbled the builders' pipes)."""
    cmd = [sys.executable, "-c", _COMMAND, "import", "orders", str(csv_path)]
    if profile is not None:
        profile[1].parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--rate", "250", "--subprocesses", "--threads",
               "--nonblocking", "--format", profile[0], "-o", str(profile[1]), "--", *cmd]
    full_env = {**os.environ, "AFTERSALES_ENV": "development", "AFTERSALES_CLOCK": "real", **env}
    full_env.pop("AFTERSALES_DATABASE_SCHEMA", None)
    full_env.update(env)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    out = proc.stdout.read().decode() if proc.stdout else ""
    errout = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"import failed ({proc.returncode}):\n{out}\n{errout[-3000:]}")
    own = [json.loads(line.split(" ", 1)[1]) for line in errout.splitlines() if line.startswith("BENCH-CPU ")]
    return {"seconds": round(seconds, 2), "cpu_user_s": round(usage.ru_utime, 1), "cpu_system_s": round(usage.ru_stime, 1),
            "cpu_main_s": round(own[-1][0], 1) if own else None, "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "output": out.strip().splitlines()[-1:]}


def counts(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(t.metadata.tables[name])).scalar_one()) for name in TABLES}


def check_ledger(engine: Any, n: int) -> None:
    """Every order has its D2 payment transaction, and every transaction balances."""
    e = t.ledger_entries.c
    with engine.connect() as conn:
        payments = conn.execute(select(func.count()).select_from(t.ledger_transactions)
                                .where(t.ledger_transactions.c.kind == "payment")).scalar_one()
        unbalanced = conn.execute(select(func.count()).select_from(
            select(e.transaction_id).group_by(e.transaction_id)
            .having(func.sum(e.debit_fen) != func.sum(e.credit_fen)).subquery())).scalar_one()
    assert payments == n and unbalanced == 0, (payments, unbalanced)


def raw_limit(kind: str, source: Any, tmp: Path) -> dict[str, Any]:
    """Write every row the import wrote into a fresh database through the driver, in one transaction."""
    target, _, cleanup = fresh(kind, tmp, "raw")
    rows = 0
    try:
        if kind == "postgresql":
            dumps = []
            src = source.raw_connection()
            try:
                cur = src.cursor()
                for name in TABLES:
                    file = tmp / f"raw-{name}.copy"
                    with file.open("wb") as f, cur.copy(f"COPY {name} TO STDOUT") as copy:
                        for block in copy:
                            f.write(block)
                    dumps.append((name, file))
            finally:
                src.close()
            raw = target.raw_connection()
            try:
                cur = raw.cursor()
                started = time.perf_counter()
                for name, file in dumps:
                    with file.open("rb") as f, cur.copy(f"COPY {name} FROM STDIN") as copy:
                        while block := f.read(1 << 20):
                            copy.write(block)
                    rows += int(cur.rowcount) if cur.rowcount and cur.rowcount > 0 else 0
                raw.commit()
                seconds = time.perf_counter() - started
            finally:
                raw.close()
            for _, file in dumps:
                file.unlink()
        else:
            src = source.raw_connection()
            raw = target.raw_connection()
            seconds = 0.0
            try:
                scur, cur = src.cursor(), raw.cursor()
                cur.execute(f"PRAGMA cache_size = {-SQLITE_CACHE_KIB}")  # as the importer's connection
                cur.execute("BEGIN IMMEDIATE")
                for name in TABLES:
                    scur.execute(f"SELECT * FROM {name}")
                    width = len(scur.description)
                    sql = f"INSERT INTO {name} VALUES ({', '.join('?' * width)})"
                    while batch := scur.fetchmany(20000):
                        started = time.perf_counter()
                        cur.executemany(sql, batch)
                        seconds += time.perf_counter() - started
                        rows += len(batch)
                started = time.perf_counter()
                raw.commit()
                seconds += time.perf_counter() - started
            finally:
                src.close()
                raw.close()
    finally:
        target.dispose()
        if cleanup:
            cleanup()
    return {"rows": rows, "seconds": round(seconds, 2)}


def bench(kind: str, csv_path: Path, spec: dict[str, int], tmp: Path, profile: Path | None = None) -> dict[str, Any]:
    # Profiles first, each on a database of its own: a flame graph (SVG) and the raw collapsed stacks (.txt).
    for fmt, suffix in (("flamegraph", "svg"), ("raw", "txt")) if profile is not None else ():
        assert profile is not None
        out = profile.with_name(f"{profile.name}-{kind}.{suffix}")
        engine, env, cleanup = fresh(kind, tmp, f"profile_{suffix}")
        try:
            print(f"[{kind}] profiling the import into {out} …", flush=True)
            run_import(csv_path, env, (fmt, out))
        finally:
            engine.dispose()
            if cleanup:
                cleanup()
    engine, env, cleanup = fresh(kind, tmp, "run")
    try:
        print(f"[{kind}] importing {spec['orders']:,} orders ({spec['lines']:,} lines) …", flush=True)
        load = [round(x, 2) for x in os.getloadavg()]
        result = run_import(csv_path, env)
        written = counts(engine)
        assert written["orders"] == spec["orders"], written
        check_ledger(engine, spec["orders"])
        rate = spec["orders"] / result["seconds"]
        result["cpu_us_per_order"] = round((result["cpu_user_s"] + result["cpu_system_s"]) * 1e6 / spec["orders"])
        if result["cpu_main_s"] is not None:
            result["cpu_main_us_per_order"] = round(result["cpu_main_s"] * 1e6 / spec["orders"])
        result["loadavg_before"] = load
        result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        print(f"[{kind}] {result['seconds']} s, {rate:,.0f} orders/s, {result['cpu_us_per_order']} µs CPU/order "
              f"(importing process alone: {result.get('cpu_main_us_per_order')} µs) (load {load[0]} → "
              f"{result['loadavg_after'][0]}), peak RSS {result['peak_rss_mb']} MB; rows {written}", flush=True)
        print(f"[{kind}] raw limit: the same rows through the driver in one transaction …", flush=True)
        raw = raw_limit(kind, engine, tmp)
        raw_rate = spec["orders"] / raw["seconds"] if raw["seconds"] else 0.0
        print(f"[{kind}] raw: {raw['rows']:,} rows in {raw['seconds']} s = {raw_rate:,.0f} orders/s; "
              f"ratio {rate / raw_rate if raw_rate else 0:.3f}", flush=True)
    finally:
        engine.dispose()
        if cleanup:
            cleanup()
    return {"database": kind, **result, "orders_per_s": round(rate), "rows_written": written,
            "raw_limit": {**raw, "orders_per_s": round(raw_rate)},
            "ratio_to_raw": round(rate / raw_rate, 3) if raw_rate else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "import_orders.json")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", type=Path, default=None,
                    help="first profile the import with py-spy into PROFILE-<database>.svg and .txt")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        csv_path = tmp / "orders.csv"
        started = time.perf_counter()
        spec = generate(csv_path, args.orders, args.seed)
        print(f"generated {csv_path} ({csv_path.stat().st_size / 1e6:,.0f} MB, {spec}) in {time.perf_counter() - started:.1f} s",
              flush=True)
        kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
        runs = [bench(kind, csv_path, spec, tmp, args.profile) for kind in kinds]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    data = {"benchmark": "B4 import orders", "target_orders_per_s": 50_000, "file": spec, "runs": runs,
            "cores": os.cpu_count(), "loadavg": os.getloadavg(), "python": sys.version.split()[0],
            "self_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
