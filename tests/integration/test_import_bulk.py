"""The streaming bulk import writes through the store's one batch writer (COPY on PostgreSQL, executemany on SQLite)
exactly the rows order creation writes for the same orders — orders and their JSON state, groups and G4 timers, D2
payment transactions and entries, S1 search terms, events, the webhook outbox — and still writes nothing at all when
a row is rejected after chunks were already written. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from aftersales import importer
from aftersales.domain import policy as policy_mod
from aftersales.importer import CSV_COLUMNS, import_orders
from aftersales.service import orders, setup
from aftersales.service.context import PLATFORM, Clock, Context
from aftersales.store import bulk
from aftersales.store import tables as t
from aftersales.store.db import make_engine
from aftersales.store.migrate import migrated_schema, upgrade

HEADER = ",".join(CSV_COLUMNS)
PG_URL = os.environ.get("AFTERSALES_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CLOCK_START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # as conftest
PAID = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
#: Every table an import writes to, with the columns to order its rows by.
TABLES = {"groups": "id", "orders": "id", "timers": "id", "ledger_transactions": "id", "ledger_entries": "id", "events": "id",
          "webhook_outbox": "id", "search_terms": "order_id,term"}


def _fresh(database: Any, tmp_path: Path) -> Iterator[Context]:
    """A second fresh, migrated database of the same kind as ``database``."""
    if database.kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/twin.db")
        upgrade(engine)
        yield Context(engine=engine, policy=policy_mod.load(), clock=Clock(True, CLOCK_START))
        engine.dispose()
        return
    with migrated_schema(PG_URL, f"t_{os.getpid()}_{secrets.token_hex(4)}") as schema:
        engine = make_engine(PG_URL, schema=schema)
        try:
            yield Context(engine=engine, policy=policy_mod.load(), clock=Clock(True, CLOCK_START))
        finally:
            engine.dispose()


@pytest.fixture
def twin(database: Any, tmp_path: Path) -> Iterator[Context]:
    yield from _fresh(database, tmp_path)


def prepare(ctx: Context) -> None:
    """The same starting point in both databases: two shops, a webhook subscription, a group opened through the API."""
    for mid in ("mA", "mB"):
        setup.create_merchant(ctx, PLATFORM, id=mid, name=f"Shop {mid}", return_address="1 Return Rd")
    setup.put_category(ctx, PLATFORM, code="apparel", name="Apparel", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=None, warranty_days=None)  # E4: the items' category exists
    with ctx.engine.begin() as conn:
        conn.execute(insert(t.webhook_subscriptions).values(id="wh_1", merchant_id=None, url="https://example.test/hook",
                                                            secret="whsec_x", event_types=[], active=True, created_at=PAID))
    orders.create_order(ctx, PLATFORM, {"id": "api-1", "merchant_id": "mA", "buyer_id": "bX", "paid_at": PAID,
                                        "shipping_fee_fen": 0, "group": {"id": "gA", "size": 2},
                                        "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1,
                                                   "unit_price_fen": 1999}]})


def line(oid: str, sku: str = "s1", *, merchant: str = "mA", buyer: str = "bX", paid: datetime = PAID, fee: str = "500",
         insured: str = "", qty: str = "1", price: str = "1999", title: str = "Item", group: str = "", size: str = "",
         auto: str = "") -> str:
    return ",".join([oid, merchant, buyer, paid.isoformat(), fee, insured, sku, title, "apparel", qty, price, "", group, size, auto])


def sample(tmp_path: Path) -> Path:
    """Plain and multi-line orders; groups formed in one chunk, across chunks and through a stored group; a group
    still pending at the end of the file; titles that need escaping in COPY (tab, backslash, quotes, non-ASCII)."""
    p = [PAID + timedelta(minutes=i) for i in range(20)]
    rows = [
        HEADER,
        line("o1", qty="2", price="1000", paid=p[0]),
        line("o1", "s2", price="500", title='"Tab\there, back\\slash ""quoted"" 中文"'),
        line("o2", merchant="mB", buyer="bY", fee="0", insured="yes", paid=p[1]),
        line("o3", group="g1", size="2", paid=p[2]),
        line("o4", buyer="bY", group="g1", size="2", paid=p[3]),          # g1 forms (G3) in the same chunk
        line("o5", group="g2", size="3", auto="1", paid=p[4]),            # g2 opens …
        line("o6", paid=p[5]),
        line("o7", buyer="bZ", group="g2", size="3", paid=p[6]),
        line("o8", merchant="mB", paid=p[7]),
        line("o9", buyer="bY", group="g2", size="3", paid=p[8]),          # … and forms chunks later
        line("o10", buyer="bY", group="gA", size="2", paid=p[9]),         # forms the group opened through the API
        line("o11", group="g3", size="3", paid=p[10]),                    # g3 stays pending: its G4 timer
        line("o11", "s2", price="1", paid=p[10]),
        line("o12", merchant="mB", buyer="bQ", fee="800", paid=p[11]),
    ]
    path = tmp_path / "orders.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def snapshot(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    out = {}
    with ctx.engine.connect() as conn:
        for name, key in TABLES.items():
            table = t.metadata.tables[name]
            order = [table.c[k] for k in key.split(",")]
            out[name] = [dict(r) for r in conn.execute(select(table).order_by(*order)).mappings()]
    return out


def as_api_orders(path: Path) -> list[dict[str, Any]]:
    """The orders of a CSV written by :func:`sample`, as bodies of ``POST /v1/orders`` (its lines, in file order)."""
    out: list[dict[str, Any]] = []
    for cells in csv.DictReader(path.read_text(encoding="utf-8").splitlines()):
        item = {"sku": cells["sku"], "title": cells["title"], "category": cells["category"], "quantity": int(cells["quantity"]),
                "unit_price_fen": int(cells["unit_price_fen"])}
        if out and out[-1]["id"] == cells["id"]:
            out[-1]["items"].append(item)
            continue
        body: dict[str, Any] = {"id": cells["id"], "merchant_id": cells["merchant_id"], "buyer_id": cells["buyer_id"],
                                "paid_at": datetime.fromisoformat(cells["paid_at"]), "shipping_fee_fen": int(cells["shipping_fee_fen"]),
                                "return_shipping_insured": cells["return_shipping_insured"] == "yes", "items": [item]}
        if cells["group_id"]:
            body["group"] = {"id": cells["group_id"], "size": int(cells["group_size"]), "auto_complete": cells["group_auto_complete"] == "1"}
        out.append(body)
    return out


def canonical(snap: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """The rows without their surrogate ids (which follow the order of writing), as sorted text: a ledger entry names
    its transaction by key, an outbox row its event by what the event says."""
    tx_key = {r["id"]: r["key"] for r in snap["ledger_transactions"]}
    out = {}
    for name, rows in snap.items():
        canon = []
        for r in rows:
            r = {k: v for k, v in r.items() if k not in ("id", "event_id")}
            if name == "ledger_entries":
                r["transaction_id"] = tx_key[r["transaction_id"]]
            if name == "webhook_outbox":
                payload = json.loads(r["payload"])
                payload["data"].pop("event_id")
                r["payload"] = payload
            canon.append(repr(sorted(r.items())))
        out[name] = sorted(canon)
    return out


@pytest.mark.parametrize("chunk", [2, 5000])
def test_the_import_writes_the_rows_order_creation_writes(ctx, twin, tmp_path, monkeypatch, chunk):
    """The import writes through the store's one batch writer (COPY on PostgreSQL, executemany on SQLite): every row
    equals what ``POST /v1/orders`` writes for the same orders one by one — orders and their JSON state, groups, D2
    payment transactions and entries, S1 search terms, events, the webhook outbox — but for the G4 timers of groups
    that form within the file: the import writes a group once, formed, and arms no timer for it."""
    monkeypatch.setattr(importer, "CHUNK", chunk)
    monkeypatch.setattr(bulk, "BULK_ROWS", 3)  # small batches take the driver's bulk path too
    monkeypatch.setattr(importer, "PARALLEL_LINES", 0 if chunk == 2 else 10**9)  # read by a second process, or not
    path = sample(tmp_path)
    prepare(ctx)
    prepare(twin)
    for body in as_api_orders(path):
        orders.create_order(ctx, PLATFORM, body)
    report = import_orders(twin, path)
    assert report.written, report.rejections
    assert (report.orders, report.rows, report.groups) == (12, 14, 3)
    want, got = snapshot(ctx), snapshot(twin)
    stale = [r for r in want["timers"] if r["subject_id"] in ("g1", "g2")]
    assert [(r["subject_id"], r["rule"]) for r in stale] == [("g1", "G4"), ("g2", "G4")]
    want["timers"] = [r for r in want["timers"] if r not in stale]
    want_rows, got_rows = canonical(want), canonical(got)
    for name in TABLES:
        assert got_rows[name] == want_rows[name], name
    assert len(got["orders"]) == 13 and len(got["ledger_transactions"]) == 13 and len(got["webhook_outbox"]) > 12
    assert len(got["search_terms"]) > 13 * 4  # S1: ids, buyer, SKUs, titles and their words of every order
    assert [(r["subject_id"], r["rule"]) for r in got["timers"]] == [("gA", "G4"), ("g3", "G4")]  # gA: the API's
    assert orders.get_group(twin, PLATFORM, "gA")["status"] == "formed"
    assert orders.get_group(twin, PLATFORM, "g2")["status"] == "formed"
    o1 = orders.get_order(twin, PLATFORM, "o1")
    assert o1["items"][1]["title"] == 'Tab\there, back\\slash "quoted" 中文'


def test_a_row_rejected_after_chunks_were_written_leaves_nothing(shops, tmp_path, monkeypatch):
    ctx = shops
    monkeypatch.setattr(importer, "CHUNK", 2)
    rows = [HEADER] + [line(f"o{i}", paid=PAID + timedelta(minutes=i)) for i in range(1, 8)] + [line("o8", qty="0")]
    path = tmp_path / "late.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = import_orders(ctx, path)
    assert not report.written
    assert [(r.line, r.field) for r in report.rejections] == [(9, "quantity")]
    with ctx.engine.connect() as conn:
        for name in TABLES:
            assert conn.execute(select(func.count()).select_from(t.metadata.tables[name])).scalar_one() == 0, name


def test_an_id_already_stored_is_found_by_the_second_pass_and_reported_with_every_other_problem(shops, tmp_path, monkeypatch):
    ctx = shops
    monkeypatch.setattr(importer, "CHUNK", 2)
    orders.create_order(ctx, PLATFORM, {"id": "o5", "merchant_id": "mA", "buyer_id": "bX", "paid_at": PAID, "shipping_fee_fen": 0,
                                        "items": [{"sku": "s1", "title": "A", "category": "apparel", "quantity": 1, "unit_price_fen": 100}]})
    rows = [HEADER] + [line(f"o{i}") for i in range(1, 8)] + [line("o9", merchant="nobody")]
    path = tmp_path / "taken.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = import_orders(ctx, path)
    assert not report.written
    assert [(r.line, r.field) for r in report.rejections] == [(6, "id"), (9, "merchant_id")]
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.orders)).scalar_one() == 1


@pytest.fixture
def shops(ctx):
    for mid in ("mA", "mB"):
        setup.create_merchant(ctx, PLATFORM, id=mid, name=f"Shop {mid}", return_address="1 Return Rd")
    # E4: the categories of the imported items must exist.
    setup.put_category(ctx, PLATFORM, code="apparel", name="Apparel", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=None, warranty_days=None)
    return ctx


@pytest.mark.parametrize(("fmt", "builders", "dry_run"), [("csv", 2, True), ("csv", 3, False), ("jsonl", 2, True), ("jsonl", 3, False)])
def test_builder_processes_read_and_check_the_file_as_this_one_does(shops, tmp_path, monkeypatch, fmt, builders, dry_run):
    """Big files are read, checked and built by builder processes: the same orders, rows and rejections (line, field,
    message) as when this process reads them — on rows of the fast path and of the API's model alike, in groups or
    not, a dry run or the two passes of an import (an id taken in the database)."""
    monkeypatch.setattr(importer, "CHUNK", 3)
    monkeypatch.setattr(importer, "BUILDERS", builders)
    orders.create_order(shops, PLATFORM, {"id": "taken", "merchant_id": "mA", "buyer_id": "bX", "paid_at": PAID, "shipping_fee_fen": 0,
                                          "items": [{"sku": "s1", "title": "A", "category": "apparel", "quantity": 1,
                                                     "unit_price_fen": 100}]})
    if fmt == "csv":
        lines = [HEADER, line("o1", qty="2"), line("o1", "s2", price="1"), line("o2", qty="0"), line("o3", paid=PAID, fee="-1"),
                 line("o4", title='"A, ""quoted"" title 中文"'), line("o2"), "x,y", line("o5", group="g1", size="2"),
                 line("o6", buyer="bY", group="g1", size="2"), line("o7", merchant="nobody"), line("o8", price="abc"),
                 line("taken"), line("o9", paid=PAID + timedelta(days=3650)), line("o10", group="g1", size="2")]
    else:
        body = {"id": "j1", "merchant_id": "mA", "buyer_id": "bX", "paid_at": PAID.isoformat(), "shipping_fee_fen": 0,
                "items": [{"sku": "s1", "title": "T", "category": "apparel", "quantity": 1, "unit_price_fen": 100}]}
        lines = [json.dumps(body), "{not json", json.dumps({**body, "id": "j2", "shipping_fee_fen": -5}), "[1]",
                 json.dumps(body), json.dumps({**body, "id": "j3"}), json.dumps({**body, "id": "taken"}),
                 json.dumps({**body, "id": "j4", "merchant_id": "nobody"}), json.dumps({**body, "id": "j3"})]
    path = tmp_path / f"mixed.{fmt}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reports = []
    for parallel in (10**9, 0):
        monkeypatch.setattr(importer, "PARALLEL_LINES", parallel)
        reports.append(import_orders(shops, path, dry_run=dry_run))
    here, there = reports
    assert len(there.rejections) > 5 and not there.written
    assert (there.rows, there.orders, there.groups, there.rejections) == (here.rows, here.orders, here.groups, here.rejections)



def many(tmp_path: Path, n: int, fmt: str = "csv") -> Path:
    """``n`` orders of both shops: one to three items, every fifth opening a group of two or three whose members
    follow within a few orders (so groups span chunks of a few orders), a group still pending at the end."""
    rows = [HEADER]
    bodies = []
    groups: list[list[Any]] = []  # [group id, size, members still to come, merchant]
    for i in range(n):
        paid = PAID - timedelta(hours=2) + timedelta(seconds=i)
        merchant = ("mA", "mB")[i % 2]
        group, size = "", ""
        if groups and i % 3 == 0:
            g = groups[0]
            group, size, merchant = g[0], str(g[1]), g[3]
            g[2] -= 1
            if g[2] == 0:
                groups.pop(0)
        elif i % 5 == 0:
            g = [f"g{i}", 2 + i % 2, 1 + i % 2, merchant]
            groups.append(g)
            group, size = g[0], str(g[1])
        items = [(f"s{j}", "1" if j else "2", str(100 + j + i % 7), f"Item {j} of o{i}\tx" if j == 1 else f"Item {j}")
                 for j in range(1 + i % 3)]
        for j, (sku, qty, price, title) in enumerate(items):
            quoted = '"' + title.replace('"', '""') + '"'
            rows.append(line(f"o{i}", sku, merchant=merchant, buyer=f"b{i % 4}", paid=paid, qty=qty, price=price,
                             title=quoted, fee=str(i % 3 * 100), insured="yes" if i % 4 == 0 else "",
                             group=group if j == 0 else "", size=size if j == 0 else "")
                        if j == 0 else ",".join([f"o{i}", "", "", "", "", "", sku, quoted, "apparel", qty, price, "", "", "", ""]))
        body: dict[str, Any] = {"id": f"o{i}", "merchant_id": merchant, "buyer_id": f"b{i % 4}", "paid_at": paid.isoformat(),
                                "shipping_fee_fen": i % 3 * 100, "return_shipping_insured": i % 4 == 0,
                                "items": [{"sku": sku, "title": title, "category": "apparel", "quantity": int(qty),
                                           "unit_price_fen": int(price)} for sku, qty, price, title in items]}
        if group:
            body["group"] = {"id": group, "size": int(size)}
        bodies.append(json.dumps(body, ensure_ascii=False))
    path = tmp_path / f"many.{fmt}"
    path.write_text("\n".join(rows if fmt == "csv" else bodies) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("fmt", "builders", "subscribed"), [("csv", 2, True), ("csv", 3, False), ("jsonl", 2, False)])
def test_builder_processes_write_the_rows_this_process_writes(ctx, twin, tmp_path, monkeypatch, fmt, builders, subscribed):
    """A big file's chunks are checked and built by builder processes, their rows sent in driver form (COPY text on
    PostgreSQL, tuples on SQLite): row for row what this process builds and writes for the same file (all but the
    surrogate ids, which follow the order of writing) — orders in and out of groups, groups spanning chunks, D2,
    S1, events, and the webhook outbox when somebody subscribes."""
    monkeypatch.setattr(importer, "CHUNK", 7)
    monkeypatch.setattr(importer, "BUILDERS", builders)
    path = many(tmp_path, 120, fmt)
    reports = []
    for target, parallel in ((ctx, 10**9), (twin, 0)):
        prepare(target)
        if not subscribed:
            with target.engine.begin() as conn:
                conn.execute(t.webhook_subscriptions.delete())
        monkeypatch.setattr(importer, "PARALLEL_LINES", parallel)
        reports.append(import_orders(target, path))
    here, there = reports
    assert here.written and there.written, (here.rejections, there.rejections)
    assert (there.rows, there.orders, there.groups) == (here.rows, here.orders, here.groups)
    assert here.orders == 120 and here.groups > 10
    want, got = snapshot(ctx), snapshot(twin)
    assert len(got["orders"]) == 121 and len(got["search_terms"]) > 120 * 4
    assert (len(got["webhook_outbox"]) > 120) is subscribed
    want_rows, got_rows = canonical(want), canonical(got)
    for name in TABLES:
        assert got_rows[name] == want_rows[name], name
