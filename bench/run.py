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
             "http": ["--seconds", "15", "--connections", "16", "--configs", "sqlite:1,postgresql:1,postgresql:2"],
             "import": ["--orders", "1000000", "--db", "both"],
             "scale": ["--cases", "10000,5000000", "--runs", "3", "--actions", "300"],
             "soak": ["--seconds", "240", "--kills", "20", "--pg-restarts", "2", "--self-check"],
             "replay": ["--cases", "100000"]},
    "smoke": {"eligibility": ["--seconds", "0.2", "--runs", "2", "--family-seconds", "0", "--orders-per-weight", "3"],
              "deadlines": ["--backlog", "1500", "--steady-seconds", "0"],
              "http": ["--seconds", "2", "--warmup", "0.5", "--connections", "4", "--configs", "sqlite:1,postgresql:1",
                       "--rates", "100", "--open-seconds", "1"],
              "import": ["--orders", "5000", "--db", "both"],
              "scale": ["--cases", "2000,5000", "--runs", "1", "--actions", "20", "--variants", "1"],
              "soak": ["--seconds", "20", "--kills", "2", "--pg-restarts", "1", "--self-check"],
              "replay": ["--cases", "500"]},
}


def run(script: str, args: list[str], out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    cmd = [sys.executable, str(BENCH / script), *args, "--out", str(out)]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=sys.stdout, stderr=sys.stderr)
    data: dict[str, Any] = json.loads(out.read_text())
    data["_seconds"] = round(time.perf_counter() - started, 1)
    return data


def rows(el: dict[str, Any], dl: dict[str, Any], http: dict[str, Any], imp: dict[str, Any], scale: dict[str, Any],
         soak: dict[str, Any]) -> list[dict[str, Any]]:
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
    out += import_rows(imp) + scale_rows(scale) + soak_rows(soak)
    return out


def replay_rows(rp: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 15: the what-if replay under the version in force (identity) must reproduce every stored event."""
    return [{"id": "T0", "benchmark": f"what-if replay (identity) of {rp['cases']:,} cases, {rp['events']:,} events: "
                                      "cases / s, mismatches",
             "config": rp["database"], "figure": f"{rp['cases_per_second']:,} /s, {rp['mismatches']} mismatches",
             "limit": None, "ratio": None, "target": "0 mismatches, every order replayable",
             "met": rp["mismatches"] == 0 and rp["unreplayable"] == 0}]



def import_rows(imp: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in imp.get("runs", []):
        out.append({"id": "B4", "benchmark": f"`aftersales import orders` of {imp['file']['orders']:,} orders, orders / s",
                    "config": r["database"], "figure": r["orders_per_s"],
                    "limit": f"{r['raw_limit']['orders_per_s']:,} orders/s (the same {r['raw_limit']['rows']:,} rows through "
                             "the driver in one transaction)",
                    "ratio": r["ratio_to_raw"], "target": ">= 50,000 /s", "met": r["orders_per_s"] >= 50_000})
    return out


#: B5 judges the figures the issue names: reason shares and response-time percentiles (returns per SKU are listed too).
B5_FIGURES = ("reasons", "times")


def scale_rows(scale: dict[str, Any]) -> list[dict[str, Any]]:
    if "skipped" in scale or not scale.get("runs"):
        return []
    runs = scale["runs"]
    last = runs[-1]
    out = []
    limit = f"GROUP BY reason over every case: {last['raw_limit']['group_by_reason_ms']:,} ms"
    for figure in ("reasons", "times", "trend", "returns"):
        rows_ = [r for r in last["insights"] if r["figure"] == figure]
        if not rows_:
            continue
        worst = max(rows_, key=lambda r: r["p50_ms"])
        shop = "every shop" if worst["shop"] == "all" else f"shop {worst['shop']}"
        out.append({"id": "B5", "benchmark": f"insights `{figure}` over {last['cases']:,} cases, slowest window (p50 ms)",
                    "config": f"PostgreSQL, {shop}, {worst['weeks']} weeks", "figure": worst["p50_ms"], "limit": limit,
                    "ratio": None, "target": "< 1,000 ms" if figure in B5_FIGURES else "(not a B5 target)",
                    "met": worst["p50_ms"] < 1000 if figure in B5_FIGURES else None})
    if "b6" in scale:
        small, large = runs[0]["actions"], last["actions"]
        b6 = scale["b6"]
        out.append({"id": "B6", "benchmark": f"case action p50 / p99 ms, {b6['small']:,} vs {b6['large']:,} cases stored",
                    "config": "PostgreSQL, merchant approves (refund settled)",
                    "figure": f"{small['p50_ms']} / {small['p99_ms']} vs {large['p50_ms']} / {large['p99_ms']}",
                    "limit": f"one-row update transaction p50 {last['raw_limit']['update_txn_p50_ms']} ms",
                    "ratio": f"{b6['p50_ratio']} / {b6['p99_ratio']}", "target": "< 25 % apart", "met": b6["met"]})
    return out


def soak_rows(soak: dict[str, Any]) -> list[dict[str, Any]]:
    if "skipped" in soak:
        return [{"id": "faults", "benchmark": "soak", "config": "—", "figure": f"skipped: {soak['skipped']}", "limit": None,
                 "ratio": None, "target": "0 violations", "met": None}]
    rec = soak["recover_seconds"]["kill"]
    return [{"id": "faults", "benchmark": f"soak: {soak['kills']} SIGKILLs, {soak['pg_restarts']} PostgreSQL restarts; "
                                          "acknowledged writes found, violations, recovery p50 / max s",
             "config": f"PostgreSQL, {soak['settings']['server_workers']} worker(s), {soak['settings']['seconds']:.0f} s",
             "figure": f"{soak['writes_found']:,} / {soak['writes_acknowledged']:,} found, {soak['violations']} violations, "
                       f"recovery {rec['p50']} / {rec['max']} s",
             "limit": f"cold start {soak['cold_start_s']} s", "ratio": soak["recover_ratio_to_cold_start"],
             "target": "nothing lost, 0 violations, no hand action",
             "met": soak["violations"] == 0 and soak["writes_found"] == soak["writes_acknowledged"]}]


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
    pg = postgres_available()
    if not pg:
        if os.environ.get("CI") == "true":
            sys.exit("PostgreSQL is required under CI=true")
        print("PostgreSQL not available: SQLite only", flush=True)
        sizes["deadlines"] += ["--db", "sqlite"]
        sizes["http"] = [a if not a.startswith("sqlite:") else "sqlite:1" for a in sizes["http"]]
        i = sizes["http"].index("--configs")
        sizes["http"][i + 1] = "sqlite:1"
        sizes["import"][sizes["import"].index("--db") + 1] = "sqlite"
    el = run("eligibility.py", sizes["eligibility"], out_dir / "eligibility.json")
    dl = run("deadlines.py", [*sizes["deadlines"], "--tmp", str(out_dir)], out_dir / "deadlines.json")
    http = run("http_cycle.py", sizes["http"], out_dir / "http_cycle.json")
    imp = run("import_orders.py", sizes["import"], out_dir / "import_orders.json")
    scale = run("scale.py", sizes["scale"], out_dir / "scale.json") if pg else {"skipped": "no PostgreSQL"}
    soak = run("soak.py", sizes["soak"], out_dir / "soak.json") if pg else {"skipped": "no PostgreSQL"}
    rp = run("replay.py", sizes["replay"], out_dir / "replay.json")
    at = datetime.now(UTC).isoformat(timespec="seconds")
    table = rows(el, dl, http, imp, scale, soak) + replay_rows(rp)
    (out_dir / "results.json").write_text(json.dumps({"mode": mode, "at": at, "rows": table}, indent=2) + "\n")
    (out_dir / "results.md").write_text(markdown(table, mode, at))
    print(markdown(table, mode, at))
    print(f"written to {out_dir.relative_to(ROOT)}/results.md and results.json")


if __name__ == "__main__":
    main()
