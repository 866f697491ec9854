"""B5 / B6 (issue 7): shop insights over millions of cases, and the latency of a case action as the tables grow.

Not a test. Run: ``.venv/bin/python bench/scale.py --cases 10000,5000000 --out bench/results/scale.json``.

For each size N a fresh PostgreSQL schema is migrated and seeded with N cases (one order each) spread over 1,000
shops with a skew (``m0000``, the big shop, holds 5 % of the cases; the others follow a Zipf-like law), opened over
the 60 weeks before the benchmark's fixed (manual) clock. The rows are those the service writes: a few dozen
templates (order and case, and their refunds and pending timers) are built by the domain — an unshipped refund
approved, a delivered return confirmed, a rejection accepted, a case still waiting for the merchant — and written by
the store's own unit of work (``Tracker.flush``); their rows are then read back as PostgreSQL ``COPY`` text and cloned
with new ids, shop, SKU and instants shifted as a whole (so every clone is the template moved in time), and loaded with
``COPY ... FROM STDIN`` through psycopg 3, with the secondary indexes dropped while loading and rebuilt after
(their definitions are read from ``pg_indexes`` and restored verbatim). Events and ledger postings of the
seeded history are not cloned (the insights do not read them; the actions measured write their own).

B5: every insights figure (``service.insights.insights(..., only=figure)``, as the workbench pages and CSV exports
call it) for the big shop and for all shops, each window (4, 12, 26, 52 weeks), ``--runs`` times: p50 and max.
Target: under 1 s at 5,000,000 cases.

B6: ``--actions`` merchant approvals of refund_only cases awaiting an answer (E2/M1: the refund is issued and
settled, F1), each through ``service.cases.act`` in process, p50/p99/max. Target: p50 and p99 at the largest N
within 25 % of those at the smallest.

Raw limits, same run, same database, straight through the driver: ``SELECT count(*) FROM cases``, the same
``GROUP BY reason`` over the whole table, and one-row ``UPDATE`` transactions on ``cases`` (p50/p99).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from aftersales.domain import policy as policy_mod  # noqa: E402
from aftersales.domain.cases import Action  # noqa: E402
from aftersales.domain.cases import act as domain_act  # noqa: E402
from aftersales.domain.catalog import CaseType, Reason  # noqa: E402
from aftersales.domain.events import Actor  # noqa: E402
from aftersales.domain.opening import open_case  # noqa: E402
from aftersales.domain.orders import Order, OrderItem, RefundStatus, new_order  # noqa: E402
from aftersales.service import insights as svc_insights  # noqa: E402
from aftersales.service.cases import act as service_act  # noqa: E402
from aftersales.service.context import Clock, Context, Principal, UnitOfWork, run  # noqa: E402
from aftersales.store.db import make_engine  # noqa: E402
from aftersales.store.migrate import upgrade  # noqa: E402

PG = os.environ.get("AFTERSALES_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: The benchmark's manual clock: a Wednesday, so the current week is partly filled.
NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # where the templates are built
SHOPS = 1000
BIG = "m0000"
SKUS_PER_SHOP = 20
HISTORY = timedelta(weeks=60)
#: Tables cloned, and the columns copied (ids of serial columns are left to their sequences).
TABLES = {"orders": None, "cases": None, "refunds": None, "timers": "id"}
TOKEN = {"order": "QQORDERQQ", "case": "QQCASEQQ", "merchant": "QQSHOPQQ", "buyer": "QQBUYERQQ", "sku": "QQSKUQQ"}
INSTANT = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\+00:00|\+00)")


# --- templates: built by the domain, written by the store, read back as COPY text -----------------------------
@dataclass
class Template:
    name: str
    open: bool  # still waiting for the merchant: opened in the last hours, an action target for B6
    lines: dict[str, list[list[Any]]]  # table -> rows, each a list of literal strings and (kind, value) holes


def _scenarios(policy: Any, variants: int) -> list[tuple[str, bool, Order]]:
    out: list[tuple[str, bool, Order]] = []
    h = timedelta(hours=1)

    def order(qty: int, price: int) -> Order:
        return new_order(id=TOKEN["order"], merchant_id=TOKEN["merchant"], buyer_id=TOKEN["buyer"], paid_at=T0 - 30 * h,
                         shipping_fee_fen=600, items=[OrderItem(TOKEN["sku"], "Thing", "general", qty, price)])

    def settle(o: Order, now: datetime) -> None:
        for r in o.refunds:
            if r.status is RefundStatus.PENDING:
                o.settle_refund(r.key, now)

    def opened(o: Order, ctype: CaseType, reason: Reason) -> str:
        case = open_case(o, case_id=TOKEN["case"], actor=Actor.BUYER, case_type=ctype, reason=reason, now=T0,
                         policy=policy, categories={})
        return case.id

    for reason in Reason:
        for i, d1 in enumerate((0.5, 3, 9, 20, 40)[:variants]):
            qty, price = 1 + i % 3, 2000 + 700 * i
            # An unshipped order, refund only, approved by the merchant after d1 hours (E2, M1, F1).
            try:
                o = order(qty, price)
                cid = opened(o, CaseType.REFUND_ONLY, reason)
                domain_act(o, cid, Action.APPROVE, Actor.MERCHANT, T0 + d1 * h, policy)
                settle(o, T0 + d1 * h)
                out.append((f"refund_only/{reason.value}/{d1}", False, o))
            except Exception:
                pass
            # Delivered, return and refund: approved after d1, returned, confirmed two days later (E3, M3, M4).
            try:
                o = order(qty, price)
                o.ship(Actor.MERCHANT, "SF", "SF1", T0 - 28 * h)
                o.deliver(Actor.MERCHANT, T0 - 4 * h, T0 - 4 * h)
                cid = opened(o, CaseType.RETURN_REFUND, reason)
                domain_act(o, cid, Action.APPROVE, Actor.MERCHANT, T0 + d1 * h, policy)
                domain_act(o, cid, Action.SHIP_RETURN, Actor.BUYER, T0 + (d1 + 5) * h, policy, carrier="SF",
                           tracking_no="SF2")
                domain_act(o, cid, Action.CONFIRM_RETURN, Actor.MERCHANT, T0 + (d1 + 53) * h, policy)
                settle(o, T0 + (d1 + 53) * h)
                out.append((f"return_refund/{reason.value}/{d1}", False, o))
            except Exception:
                pass
            # Delivered, refund only, rejected after d1 and the rejection accepted 7 hours later (M2).
            try:
                o = order(qty, price)
                o.ship(Actor.MERCHANT, "SF", "SF1", T0 - 28 * h)
                o.deliver(Actor.MERCHANT, T0 - 4 * h, T0 - 4 * h)
                cid = opened(o, CaseType.REFUND_ONLY, reason)
                domain_act(o, cid, Action.REJECT, Actor.MERCHANT, T0 + d1 * h, policy, reason="no defect visible")
                domain_act(o, cid, Action.ACCEPT_REJECTION, Actor.BUYER, T0 + (d1 + 7) * h, policy)
                out.append((f"rejected/{reason.value}/{d1}", False, o))
            except Exception:
                pass
        # Still waiting for the merchant (no first response yet): the B6 targets, opened in the last day.
        try:
            o = order(1, 3000)
            opened(o, CaseType.REFUND_ONLY, reason)
            out.append((f"open/{reason.value}", True, o))
        except Exception:
            pass
    return out


def _holes(line: str) -> list[Any]:
    """A COPY line split into literals and holes: ("id", token) or ("at", seconds after T0, iso style)."""
    pattern = re.compile("|".join([*map(re.escape, TOKEN.values()), INSTANT.pattern]))
    parts: list[Any] = []
    pos = 0
    by_token = {v: k for k, v in TOKEN.items()}
    for m in pattern.finditer(line):
        parts.append(line[pos:m.start()])
        s = m.group(0)
        if s in by_token:
            parts.append(("id", by_token[s]))
        else:
            at = datetime.fromisoformat(s.replace(" ", "T") + (":00" if s.endswith("+00") else ""))
            parts.append(("at", int((at - T0).total_seconds()), "T" in s))
        pos = m.end()
    parts.append(line[pos:])
    return parts


def build_templates(ctx: Context, raw: Any, variants: int) -> list[Template]:
    """Write each scenario through the store (Tracker.flush), read its rows back as COPY text, then delete them."""
    templates = []
    cur = raw.cursor()
    cur.execute("SET TIME ZONE 'UTC'")
    for name, is_open, order in _scenarios(ctx.policy, variants):

        def cmd(uow: UnitOfWork, o: Order = order) -> None:
            uow.tracker.add_order(o)

        run(ctx, cmd)
        oid = TOKEN["order"]
        lines: dict[str, list[list[Any]]] = {}
        for table, skip in TABLES.items():
            cols = _columns(cur, table, skip)
            key = "id" if table == "orders" else "order_id"
            buf = io.BytesIO()
            with cur.copy(f"COPY (SELECT {', '.join(cols)} FROM {table} WHERE {key} = '{oid}') TO STDOUT") as cp:
                for chunk in cp:
                    buf.write(chunk)
            lines[table] = [_holes(r) for r in buf.getvalue().decode().splitlines()]
        for table in ("timers", "payment_jobs", "refunds", "cases", "events", "search_terms"):
            cur.execute(f"DELETE FROM {table} WHERE order_id = %s", (oid,))
        cur.execute("DELETE FROM ledger_entries WHERE transaction_id IN "
                    "(SELECT id FROM ledger_transactions WHERE order_id = %s)", (oid,))
        cur.execute("DELETE FROM ledger_transactions WHERE order_id = %s", (oid,))
        cur.execute("DELETE FROM orders WHERE id = %s", (oid,))
        raw.commit()
        templates.append(Template(name, is_open, lines))
    return templates


def _columns(cur: Any, table: str, skip: str | None) -> list[str]:
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = %s ORDER BY ordinal_position", (table,))
    return [r[0] for r in cur.fetchall() if r[0] != skip]


# --- seeding -----------------------------------------------------------------------------------------------------
def shop_weights() -> list[float]:
    """m0000 holds 5 % of the cases; the other 999 shops share the rest by a Zipf-like law (i^-0.6)."""
    rest = [i ** -0.6 for i in range(1, SHOPS)]
    total = sum(rest)
    return [0.05] + [0.95 * w / total for w in rest]


def _render(parts: list[Any], ids: dict[str, str], base: datetime, cache: dict[tuple[int, bool], str]) -> str:
    out = []
    for p in parts:
        if type(p) is str:
            out.append(p)
        elif p[0] == "id":
            out.append(ids[p[1]])
        else:
            key = (p[1], p[2])
            s = cache.get(key)
            if s is None:
                at = base + timedelta(seconds=p[1])
                s = at.isoformat() if p[2] else at.isoformat(sep=" ")[:-3]
                cache[key] = s
            out.append(s)
    return "".join(out)


def templates_for(ctx: Context, engine: Any, variants: int = 5) -> list[Template]:
    """The templates, built in this database (their rows are deleted once read back)."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute("INSERT INTO merchants (id, name, closed, created_at) VALUES (%s, %s, false, %s)",
                    (TOKEN["merchant"], "template", T0 - timedelta(days=400)))
        raw.commit()
        templates = build_templates(ctx, raw, variants)
        cur.execute("DELETE FROM merchants WHERE id = %s", (TOKEN["merchant"],))
        raw.commit()
    finally:
        raw.close()
    return templates


def load(engine: Any, templates: list[Template], rng: random.Random, count: int, *, targets: bool, prefix: str,
         label: str) -> None:
    """COPY ``count`` clones: closed cases over the history, or (``targets``) refund_only cases awaiting the merchant,
    opened in the last 20 hours (half of them the big shop's) — the B6 actions approve these."""
    pool = [tp for tp in templates if tp.open == targets]
    if targets:
        pool = [tp for tp in pool if tp.name == "open/quality_problem"] or pool
    raw = engine.raw_connection()
    started = time.perf_counter()
    try:
        cur = raw.cursor()
        cur.execute("SET TIME ZONE 'UTC'")
        cols = {tb: _columns(cur, tb, skip) for tb, skip in TABLES.items()}
        weights = shop_weights()
        shops = [f"m{i:04d}" for i in range(SHOPS)]
        span = int(HISTORY.total_seconds())
        chunk = 20_000
        for start in range(0, count, chunk):
            bufs: dict[str, list[str]] = {tb: [] for tb in TABLES}
            picks = rng.choices(shops, weights, k=min(chunk, count - start))
            for j, shop in enumerate(picks):
                i = start + j
                if targets:
                    shop = BIG if i % 2 else shop
                    base = NOW - timedelta(seconds=rng.randrange(3600, 20 * 3600))
                else:
                    base = NOW - timedelta(seconds=rng.randrange(7 * 24 * 3600, span))
                base = base.replace(microsecond=0)
                ids = {"order": f"{prefix}o{i:08d}", "case": f"{prefix}c{i:08d}", "merchant": shop,
                       "buyer": f"b{i % 250_000:06d}", "sku": f"{shop}-s{rng.randrange(SKUS_PER_SHOP):02d}"}
                cache: dict[tuple[int, bool], str] = {}
                for tb, rows in rng.choice(pool).lines.items():
                    for parts in rows:
                        bufs[tb].append(_render(parts, ids, base, cache))
            for tb, rows in bufs.items():
                if rows:
                    with cur.copy(f"COPY {tb} ({', '.join(cols[tb])}) FROM STDIN") as cp:
                        cp.write("\n".join(rows) + "\n")
            raw.commit()
            done = min(count, start + chunk)
            print(f"\r  {label}: {done:,}/{count:,} cases ({done / (time.perf_counter() - started):,.0f}/s)", end="",
                  flush=True)
        print()
    finally:
        raw.close()


def seed(ctx: Context, engine: Any, n: int, rng: random.Random, templates: list[Template]) -> dict[str, Any]:
    """``n`` closed cases cloned from the templates, loaded by COPY with the secondary indexes dropped meanwhile."""
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("INSERT INTO merchants (id, name, closed, created_at) "
                    "SELECT 'm' || lpad(g::text, 4, '0'), 'Shop ' || g, false, %s FROM generate_series(0, %s) g",
                    (NOW - timedelta(days=500), SHOPS - 1))
        # Secondary indexes are dropped while loading and rebuilt after, verbatim.
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND tablename = ANY(%s) AND indexname NOT LIKE 'pk_%%'", (list(TABLES),))
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        raw.commit()
    finally:
        raw.close()
    load(engine, templates, rng, n, targets=False, prefix="s", label="seeding")
    loaded = time.perf_counter() - started
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for _, definition in indexes:
            cur.execute(definition)
        raw.commit()
        indexed = time.perf_counter() - started - loaded
        raw.driver_connection.autocommit = True
        for tb in TABLES:
            cur.execute(f"VACUUM (ANALYZE) {tb}")
        cur.execute("SELECT pg_total_relation_size('cases'), pg_total_relation_size('orders')")
        sizes = cur.fetchone()
    finally:
        raw.close()
    return {"cases": n, "templates": len(templates), "load_seconds": round(loaded, 1),
            "index_seconds": round(indexed, 1), "vacuum_seconds": round(time.perf_counter() - started - loaded - indexed, 1),
            "seconds": round(time.perf_counter() - started, 1), "cases_bytes": sizes[0], "orders_bytes": sizes[1]}


# --- B5, B6 and the raw limits -----------------------------------------------------------------------------------
def pct(values: list[float], p: int) -> float:
    s = sorted(values)
    return s[max(1, -(-p * len(s) // 100)) - 1]


def bench_insights(ctx: Context, runs: int) -> list[dict[str, Any]]:
    platform = Principal("platform")
    out = []
    for shop in (BIG, None):
        for weeks in svc_insights.WEEKS:
            for figure in svc_insights.FIGURES:
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    svc_insights.insights(ctx, platform, merchant_id=shop, weeks=weeks, only=figure)
                    times.append(time.perf_counter() - t0)
                r = {"shop": shop or "all", "weeks": weeks, "figure": figure,
                     "p50_ms": round(statistics.median(times) * 1000, 1), "max_ms": round(max(times) * 1000, 1)}
                print(f"  B5 {r['shop']:>5} {weeks:>2} w {figure:<8} p50 {r['p50_ms']:>8} ms  max {r['max_ms']:>8} ms",
                      flush=True)
                out.append(r)
    return out


@dataclass
class Stored:
    """One seeded database: its size, schema, engine and service context."""

    n: int
    schema: str
    engine: Any
    ctx: Context
    result: dict[str, Any]
    templates: list[Template]


def bench_actions(stores: list[Stored], actions: int, rng: random.Random) -> None:
    """B6: ``actions`` merchant approvals per database, interleaved (one here, one there) so that the load of a
    shared machine falls on every size alike; the first 10 of each are a warm-up, not counted."""
    tag = f"t{rng.randrange(36**4):04x}"
    for st in stores:
        load(st.engine, st.templates, rng, actions + 10, targets=True, prefix=tag,
             label=f"B6 targets ({st.n:,})")
    targets = {}
    for st in stores:
        with st.engine.connect() as conn:
            targets[st.n] = conn.execute(text("SELECT id, merchant_id FROM cases WHERE id LIKE :p ORDER BY id"),
                                         {"p": f"{tag}c%"}).all()
    lat: dict[int, list[float]] = {st.n: [] for st in stores}
    for k in range(actions + 10):
        for st in (stores if k % 2 else stores[::-1]):
            cid, shop = targets[st.n][k]
            t0 = time.perf_counter()
            service_act(st.ctx, Principal("merchant", shop), cid, "approve", {}, if_match=None, lang="en")
            if k >= 10:
                lat[st.n].append((time.perf_counter() - t0) * 1000)
    for st in stores:
        v = lat[st.n]
        st.result["actions"] = {"action": "merchant approves a refund_only case (refund issued and settled)",
                                "actions": len(v), "p50_ms": round(statistics.median(v), 2), "p99_ms": round(pct(v, 99), 2),
                                "max_ms": round(max(v), 2)}
        print(f"  B6 {st.n:>10,} cases: {json.dumps(st.result['actions'])}", flush=True)


def raw_limits(engine: Any, runs: int, updates: int) -> dict[str, Any]:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        res: dict[str, Any] = {}
        for name, sql in (("count_ms", "SELECT count(*) FROM cases"),
                          ("group_by_reason_ms", "SELECT reason, count(*) FROM cases GROUP BY reason")):
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                cur.execute(sql)
                cur.fetchall()
                times.append((time.perf_counter() - t0) * 1000)
                raw.commit()
            res[name] = round(statistics.median(times), 1)
        cur.execute("SELECT id FROM cases ORDER BY id LIMIT %s", (updates,))
        ids = [r[0] for r in cur.fetchall()]
        raw.commit()
        lat = []
        for cid in ids:
            t0 = time.perf_counter()
            cur.execute("UPDATE cases SET version = version WHERE id = %s", (cid,))
            raw.commit()
            lat.append((time.perf_counter() - t0) * 1000)
        res["update_txn_p50_ms"] = round(statistics.median(lat), 3)
        res["update_txn_p99_ms"] = round(pct(lat, 99), 3)
    finally:
        raw.close()
    return res


def open_store(n: int, args: argparse.Namespace, reuse: str | None) -> Stored:
    schema = reuse or f"bench_scale_{n}_{os.getpid()}"
    if reuse is None:
        with create_engine(args.pg_url).begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"'))
    engine = make_engine(args.pg_url, schema=schema)
    upgrade(engine)
    ctx = Context(engine, policy_mod.load(), Clock(True, NOW))
    result: dict[str, Any] = {"cases": n, "schema": schema}
    started = time.perf_counter()
    templates = templates_for(ctx, engine, args.variants)
    print(f"PostgreSQL, {n:,} cases: {len(templates)} templates built in {time.perf_counter() - started:.1f} s", flush=True)
    if reuse is None:
        seeded = seed(ctx, engine, n, random.Random(n), templates)
        print(f"  seeded in {seeded['seconds']} s (load {seeded['load_seconds']} s, indexes {seeded['index_seconds']} s, "
              f"vacuum {seeded['vacuum_seconds']} s); cases {seeded['cases_bytes'] / 2**20:,.0f} MiB, "
              f"orders {seeded['orders_bytes'] / 2**20:,.0f} MiB", flush=True)
        result["seed"] = seeded
    return Stored(n, schema, engine, ctx, result, templates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="10000,5000000", help="comma-separated sizes")
    ap.add_argument("--runs", type=int, default=5, help="runs of each insights query")
    ap.add_argument("--actions", type=int, default=300, help="case actions timed per size (B6)")
    ap.add_argument("--pg-url", default=PG)
    ap.add_argument("--keep", action="store_true", help="keep the schemas (to EXPLAIN by hand, or --reuse them)")
    ap.add_argument("--reuse", default=None, help="comma-separated schemas kept by an earlier --keep run, one per size")
    ap.add_argument("--skip-insights", action="store_true")
    ap.add_argument("--variants", type=int, default=5, help="response delays per template family (1-5; smoke: 1)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    args = ap.parse_args()
    sizes = [int(s) for s in args.cases.split(",")]
    reuse = args.reuse.split(",") if args.reuse else [None] * len(sizes)
    stores: list[Stored] = []
    try:
        for n, schema in zip(sizes, reuse, strict=True):
            stores.append(open_store(n, args, schema))
        for st in stores:
            print(f"{st.n:,} cases ({st.schema}):", flush=True)
            st.result["raw_limit"] = raw_limits(st.engine, args.runs, args.actions)
            print(f"  raw: {json.dumps(st.result['raw_limit'])}", flush=True)
            st.result["insights"] = [] if args.skip_insights else bench_insights(st.ctx, args.runs)
        bench_actions(stores, args.actions, random.Random(1))
    finally:
        for st in stores:
            st.engine.dispose()
            if not args.keep:
                with create_engine(args.pg_url).begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{st.schema}" CASCADE'))
    runs = [st.result for st in stores]
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                          "load_average": os.getloadavg()}, "runs": runs}
    if len(runs) >= 2:
        a, b = runs[0]["actions"], runs[-1]["actions"]
        result["b6"] = {"small": runs[0]["cases"], "large": runs[-1]["cases"],
                        "p50_ratio": round(b["p50_ms"] / a["p50_ms"], 3), "p99_ratio": round(b["p99_ms"] / a["p99_ms"], 3),
                        "met": b["p50_ms"] <= 1.25 * a["p50_ms"] and b["p99_ms"] <= 1.25 * a["p99_ms"]}
    last = runs[-1]
    worst = max(last["insights"], key=lambda r: r["p50_ms"], default=None)
    result["b5"] = {"cases": last["cases"], "worst": worst,
                    "met": all(r["p50_ms"] < 1000 for r in last["insights"]) if last["insights"] else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
