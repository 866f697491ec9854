"""Raw limits of the machine, measured in the same run as each benchmark (issue 7).

``raw_transactions`` issues durable transactions directly through the database driver — no SQLAlchemy, no
aftersales — on the engine's own database with the same durability settings (SQLite: WAL, synchronous=NORMAL,
BEGIN IMMEDIATE; PostgreSQL: the server's defaults, a COMMIT per transaction): one row per transaction (how many
commits per second the database can take) and rows in batches of ``batch`` per transaction (how many rows per second
it can write durably the way the deadline worker does). Our figures are reported as a ratio to these.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine


def raw_transactions(kind: str, engine: Engine, n: int, batch: int = 500) -> dict[str, Any]:
    """Commit ``n`` one-row transactions, then ``n`` rows in transactions of ``batch``; rates per second."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        param = "?" if kind == "sqlite" else "%s"
        begin = "BEGIN IMMEDIATE" if kind == "sqlite" else None
        cur.execute("DROP TABLE IF EXISTS bench_raw_limit")
        cur.execute("CREATE TABLE bench_raw_limit (id BIGINT PRIMARY KEY, payload TEXT NOT NULL)")
        raw.commit()
        payload = "x" * 200
        started = time.perf_counter()
        for i in range(n):
            if begin:
                cur.execute(begin)
            cur.execute(f"INSERT INTO bench_raw_limit (id, payload) VALUES ({param}, {param})", (i, payload))
            raw.commit()
        single = time.perf_counter() - started
        started = time.perf_counter()
        for start in range(n, 2 * n, batch):
            if begin:
                cur.execute(begin)
            cur.executemany(f"INSERT INTO bench_raw_limit (id, payload) VALUES ({param}, {param})",
                            [(i, payload) for i in range(start, min(2 * n, start + batch))])
            raw.commit()
        batched = time.perf_counter() - started
        cur.execute("DROP TABLE bench_raw_limit")
        raw.commit()
    finally:
        raw.close()
    return {"transactions": n, "per_s": round(n / single), "batch": batch, "rows_per_s_batched": round(n / batched)}
