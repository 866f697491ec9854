"""S1 (issue 14): the case search over millions of cases — the index step, on PostgreSQL (and SQLite).

Not a test. Run: ``.venv/bin/python bench/search.py --cases 5000000 --out bench/results/search.json``.

A fresh schema is migrated and ``search_terms`` is loaded with the terms of N orders (one case each) as the store
writes them (:func:`aftersales.store.search.terms`): order id, buyer id, SKU, a three-word English title or a
Chinese one (with its suffixes), the order's tracking number and the case id, over 1,000 shops with the big shop
holding 5 % (as bench/scale.py). Rows go in with ``COPY`` (PostgreSQL) or ``executemany`` (SQLite) and the primary key
is built after loading. Then, for the big shop and a small one, prefixes of every kind and selectivity — a full order
id, an order-id prefix matching ~100 orders, a buyer id, a SKU, a title word, a Chinese word, a tracking number, and a
one-letter prefix matching tens of thousands — are searched ``--runs`` times each through
:func:`aftersales.store.search.order_ids` (limit 500, as the workbench): p50 and max in ms, with the plan of one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from aftersales.store import search  # noqa: E402
from aftersales.store.db import make_engine  # noqa: E402
from aftersales.store.migrate import upgrade  # noqa: E402

PG = os.environ.get("AFTERSALES_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORDS = ["celadon", "teapot", "linen", "shirt", "ceramic", "bowl", "wool", "scarf", "bamboo", "tray", "silk", "fan"]
ZH = ["景德镇青瓷茶壶", "真丝围巾", "竹编收纳盒", "羊毛针织衫", "手工陶瓷碗"]
SHOPS = 1000
BIG = "m0000"


def shop_of(i: int) -> str:
    """The shop of order ``i`` (its own seed: the probes find the same shop the load used)."""
    rng = random.Random(i)
    return BIG if rng.random() < 0.05 else f"m{1 + int(rng.paretovariate(1.2)) % (SHOPS - 1):04d}"


def rows_for(i: int, rng: random.Random) -> tuple[str, frozenset[str]]:
    oid = f"o-{i:08d}"
    title = " ".join(rng.sample(WORDS, 3)) if rng.random() < 0.7 else rng.choice(ZH)
    terms = search.terms(oid, f"b{rng.randrange(400_000):06d}", f"SF{i:010d}",
                         [(f"sku-{rng.randrange(5000):04d}", title)], [(f"c{i:08x}", None, None)])
    return shop_of(i), terms


def load(engine: Any, n: int, pg: bool) -> dict[str, Any]:
    rng = random.Random(n)
    started = time.perf_counter()
    total = 0
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE search_terms DROP CONSTRAINT pk_search_terms") if pg else text("SELECT 1"))
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        batch: list[tuple[str, str, str]] = []

        def flush() -> None:
            if pg:
                with cur.copy("COPY search_terms (merchant_id, term, order_id) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
            else:
                cur.executemany("INSERT OR IGNORE INTO search_terms (merchant_id, term, order_id) VALUES (?, ?, ?)", batch)
            batch.clear()

        for i in range(n):
            shop, terms = rows_for(i, rng)
            oid = f"o-{i:08d}"
            batch += [(shop, term, oid) for term in terms]
            if len(batch) >= 200_000:
                total += len(batch)
                flush()
        total += len(batch)
        flush()
        raw.commit()
    finally:
        raw.close()
    loaded = time.perf_counter() - started
    with engine.begin() as conn:
        if pg:
            conn.execute(text("ALTER TABLE search_terms ADD CONSTRAINT pk_search_terms PRIMARY KEY (merchant_id, term, order_id)"))
            conn.execute(text("ANALYZE search_terms"))
    return {"rows": total, "load_seconds": round(loaded, 1), "seconds": round(time.perf_counter() - started, 1)}


def probes(n: int) -> dict[str, tuple[str, str]]:
    big = next(i for i in range(n // 2, n) if shop_of(i) == BIG)
    return {"order id (full)": (BIG, f"o-{big:08d}"), "order id prefix (100 ids)": (BIG, f"o-{big:08d}"[:-2]),
            "case id": (BIG, f"c{big:08x}"), "buyer id prefix": (BIG, "b12345"), "sku": (BIG, "sku-0042"),
            "title word": (BIG, "celad"), "chinese word": (BIG, "茶壶"), "tracking number": (BIG, f"sf{big:010d}"),
            "one letter (broad)": (BIG, "s"), "small shop, title word": ("m0500", "teap")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--pg-url", default=PG)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "search.json")
    args = ap.parse_args()
    pg = args.db == "postgresql"
    schema = f"bench_search_{os.getpid()}"
    if pg:
        with create_engine(args.pg_url).begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"'))
        engine = make_engine(args.pg_url, schema=schema)
    else:
        path = ROOT / "var" / f"bench-search-{os.getpid()}.db"
        path.parent.mkdir(exist_ok=True)
        engine = make_engine(f"sqlite:///{path}")
    result: dict[str, Any] = {"cases": args.cases, "database": args.db}
    try:
        upgrade(engine)
        result["load"] = load(engine, args.cases, pg)
        print(f"{args.db}: {args.cases:,} cases, {result['load']['rows']:,} terms loaded in {result['load']['seconds']} s",
              flush=True)
        result["searches"] = {}
        with engine.connect() as conn:
            for name, (shop, q) in probes(args.cases).items():
                q = q.lower()
                lat, hits = [], 0
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    hits = len(search.order_ids(conn, shop, q, limit=500))
                    lat.append((time.perf_counter() - t0) * 1000)
                result["searches"][name] = {"shop": shop, "q": q, "orders": hits,
                                            "p50_ms": round(statistics.median(lat), 3), "max_ms": round(max(lat), 3)}
                print(f"  {name:32} {q!r:16} {hits:4} orders  p50 {statistics.median(lat):7.3f} ms  max {max(lat):7.3f} ms",
                      flush=True)
            if pg:
                plan = conn.execute(text("EXPLAIN SELECT order_id FROM search_terms WHERE merchant_id = :m "
                                         "AND term >= :q AND term < :top ORDER BY term, order_id LIMIT :n"),
                                    {"m": BIG, "q": "celad", "top": "celad" + search.TOP,
                                     "n": 500 * search.ROWS_PER_ORDER}).scalars().all()
                result["plan"] = list(plan)
                print("\n".join(plan), flush=True)
    finally:
        engine.dispose()
        if pg:
            with create_engine(args.pg_url).begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
