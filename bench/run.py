"""Run every benchmark and write one results table (Markdown) and JSON — ``make bench``; ``make bench-smoke`` runs
the same at small sizes (``make test`` runs it, so the benchmarks never rot; a smoke run checks they work, its
figures mean little).

Each benchmark is its own script (run in its own process, writing its own JSON); this collects their figures with
the raw limit each measured in the same run, and the target of issue 7.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "src"))

SIZES = {
    "full": {"eligibility": ["--seconds", "1", "--runs", "5"],
             "deadlines": ["--backlog", "1000000", "--steady-seconds", "20"],
             "http": ["--seconds", "15", "--connections", "16", "--configs", "sqlite:1,postgresql:1,postgresql:2"]},
    "smoke": {"eligibility": ["--seconds", "0.2", "--runs", "2", "--family-seconds", "0", "--orders-per-weight", "3"],
              "deadlines": ["--backlog", "1500", "--steady-seconds", "0"],
              "http": ["--seconds", "2", "--warmup", "0.5", "--connections", "4", "--configs", "sqlite:1,postgresql:1",
                       "--rates", "100", "--open-seconds", "1"]},
}


def run(script: str, args: list[str], out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    cmd = [sys.executable, str(BENCH / script), *args, "--out", str(out)]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=sys.stdout, stderr=sys.stderr)
    data: dict[str, Any] = json.loads(out.read_text())
    data["_seconds"] = round(time.perf_counter() - started, 1)
    return data


def rows(el: dict[str, Any], dl: dict[str, Any], http: dict[str, Any]) -> list[dict[str, Any]]:
    out = [{"id": "B3", "benchmark": "eligibility decisions / s (one core)", "config": "in process",
            "figure": el["mix"]["median"], "limit": None, "ratio": None, "target": ">= 100,000 /s",
            "met": el["mix"]["median"] >= 100_000}]
    for kind, r in dl["runs"].items():
        out.append({"id": "B2", "benchmark": f"deadlines applied / s from a backlog of {r['backlog']['backlog']:,}",
                    "config": kind, "figure": r["backlog"]["rows_per_s"],
                    "limit": f"{r['raw_limit']['rows_per_s_batched']:,} rows/s in batches of 500; "
                             f"{r['raw_limit']['per_s']:,} commits/s",
                    "ratio": r["ratio_to_raw"], "target": ">= 10,000 /s", "met": r["backlog"]["rows_per_s"] >= 10_000})
    for r in http["runs"]:
        if "skipped" in r:
            continue
        a = r["latency"]["all"]
        out.append({"id": "B1", "benchmark": "HTTP steps / s (open → approve → refund), p50 / p99 ms",
                    "config": f"{r['database']}, {r['uvicorn_workers']} worker(s), {r['connections']} connections",
                    "figure": f"{r['requests_per_s']:,} ({a['p50_ms']} / {a['p99_ms']} ms)",
                    "limit": f"{r['empty_endpoint']['requests_per_s']:,} /s empty endpoint",
                    "ratio": r["ratio_to_empty"], "target": ">= 1,500 /s",
                    "met": r["requests_per_s"] >= 1500})
        for o in r.get("open_loop", []):  # latency from the scheduled time at a constant offered load
            p99 = o["latency"]["all"]["p99_ms"]
            out.append({"id": "B1", "benchmark": f"HTTP p99 at {o['offered_per_s']:,.0f} steps / s offered ({o['workload']}, open loop)",
                        "config": f"{r['database']}, {r['uvicorn_workers']} worker(s)",
                        "figure": f"{p99} ms (achieved {o['achieved_per_s']:,} /s, late {o['late']}, dropped {o['dropped']})",
                        "limit": None, "ratio": None, "target": "p99 < 50 ms at 1,000 /s",
                        "met": (p99 < 50 and not o["late"] and not o["dropped"]) if o["offered_per_s"] >= 1000 else None})
    for bid, what in (("B4", "import of 1,000,000 orders"), ("B5", "insights over 5,000,000 cases"),
                      ("B6", "case action latency, 10k vs 5M cases"), ("faults", "SIGKILL ×20 + PostgreSQL restarts soak")):
        out.append({"id": bid, "benchmark": what, "config": "—", "figure": "not measured yet", "limit": None,
                    "ratio": None, "target": "see issue 7", "met": None})
    return out


def markdown(table: list[dict[str, Any]], mode: str, at: str) -> str:
    lines = [f"# Benchmark results ({mode}, {at}, {os.cpu_count()} cores)", "",
             "| id | benchmark | configuration | figure | raw limit (same run) | ratio | target | met |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table:
        fig = f"{r['figure']:,}" if isinstance(r["figure"], int) else r["figure"]
        met = {True: "yes", False: "**no**", None: "—"}[r["met"]]
        lines.append(f"| {r['id']} | {r['benchmark']} | {r['config']} | {fig} | {r['limit'] or '—'} | "
                     f"{r['ratio'] if r['ratio'] is not None else '—'} | {r['target']} | {met} |")
    return "\n".join(lines) + "\n"


def postgres_available() -> bool:
    from sqlalchemy import create_engine, text

    from aftersales.store.db import normalise_url

    url = os.environ.get("AFTERSALES_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        engine = create_engine(normalise_url(url))
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes: check that every benchmark runs")
    args = parser.parse_args()
    mode = "smoke" if args.smoke else "full"
    out_dir = BENCH / "results" / mode
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {k: list(v) for k, v in SIZES[mode].items()}
    if not postgres_available():
        if os.environ.get("CI") == "true":
            sys.exit("PostgreSQL is required under CI=true")
        print("PostgreSQL not available: SQLite only", flush=True)
        sizes["deadlines"] += ["--db", "sqlite"]
        sizes["http"] = [a if not a.startswith("sqlite:") else "sqlite:1" for a in sizes["http"]]
        i = sizes["http"].index("--configs")
        sizes["http"][i + 1] = "sqlite:1"
    el = run("eligibility.py", sizes["eligibility"], out_dir / "eligibility.json")
    dl = run("deadlines.py", [*sizes["deadlines"], "--tmp", str(out_dir)], out_dir / "deadlines.json")
    http = run("http_cycle.py", sizes["http"], out_dir / "http_cycle.json")
    at = datetime.now(UTC).isoformat(timespec="seconds")
    table = rows(el, dl, http)
    (out_dir / "results.json").write_text(json.dumps({"mode": mode, "at": at, "rows": table}, indent=2) + "\n")
    (out_dir / "results.md").write_text(markdown(table, mode, at))
    print(markdown(table, mode, at))
    print(f"written to {out_dir.relative_to(ROOT)}/results.md and results.json")


if __name__ == "__main__":
    main()
