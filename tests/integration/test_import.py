"""Bulk import of orders (`aftersales import orders`): all rows valid → all written in one transaction;
any row rejected → nothing written, and the report names the line and the field. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from aftersales.importer import CSV_COLUMNS, ImportFileError, import_orders
from aftersales.service import orders, setup
from aftersales.service.context import PLATFORM
from aftersales.store import tables as t

HEADER = ",".join(CSV_COLUMNS)
PAID = "2026-03-01T01:00:00+00:00"  # an hour before the test clock (conftest.CLOCK_START)
PAID_AT = datetime.fromisoformat(PAID)


@pytest.fixture
def shops(ctx):
    for mid in ("mA", "mB"):
        setup.create_merchant(ctx, PLATFORM, id=mid, name=f"Shop {mid}", return_address="1 Return Rd")
    # E4: the categories of the imported items must exist.
    setup.put_category(ctx, PLATFORM, code="apparel", name="Apparel", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=None, warranty_days=None)
    return ctx


def csv_line(oid, sku="s1", *, merchant="mA", buyer="bX", paid=PAID, fee="500", insured="", qty="1", price="1999",
             confirmed="", group="", size="", auto="", category="apparel"):
    return ",".join([oid, merchant, buyer, paid, fee, insured, sku, f"Item {sku}", category, qty, price, confirmed, group, size, auto])


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def order_json(oid, **extra):
    body = {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": PAID, "shipping_fee_fen": 500,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 1999}]}
    body.update(extra)
    return json.dumps(body)


def count(ctx, table) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_good_csv_imports_every_order_with_its_lines_and_groups(shops, tmp_path):
    ctx = shops
    path = write(tmp_path, "orders.csv", [
        HEADER,
        csv_line("o1", "s1", qty="2", price="1000"),
        csv_line("o1", "s2", price="500", confirmed="true"),  # a second line of o1
        csv_line("o2", merchant="mB", buyer="bY", fee="0", insured="yes"),
        csv_line("o3", group="g1", size="2"),                 # opens g1 (G1)
        csv_line("o4", buyer="bY", group="g1", size="2"),     # completes it (G3)
        csv_line("o5", group="g2", size="3", auto="1"),       # g2 stays pending
    ])
    report = import_orders(ctx, path)
    assert report.ok and report.written, report.rejections
    assert (report.orders, report.rows, report.groups) == (5, 6, 2)

    o1 = orders.get_order(ctx, PLATFORM, "o1")
    assert o1["status"] == "awaiting_shipment"
    assert [(i["sku"], i["quantity"], i["exclusion_confirmed"]) for i in o1["items"]] == [("s1", 2, False), ("s2", 1, True)]
    assert o1["paid_fen"] == 2 * 1000 + 500 + 500
    o2 = orders.get_order(ctx, PLATFORM, "o2")
    assert o2["merchant_id"] == "mB" and o2["return_shipping_insured"] is True
    assert orders.get_order(ctx, PLATFORM, "o3")["status"] == orders.get_order(ctx, PLATFORM, "o4")["status"] == "awaiting_shipment"
    assert orders.get_group(ctx, PLATFORM, "g1")["status"] == "formed"
    g2 = orders.get_group(ctx, PLATFORM, "g2")
    assert g2["status"] == "pending" and g2["auto_complete"] is True
    assert orders.get_order(ctx, PLATFORM, "o5")["status"] == "group_pending"
    with ctx.engine.connect() as conn:  # the G4 expiry of the pending group is a durable timer, like any group's
        timers = conn.execute(select(t.timers.c.subject_id, t.timers.c.rule).where(t.timers.c.subject == "group")).all()
        paid_events = conn.execute(select(func.count()).select_from(t.events).where(t.events.c.kind == "order_paid")).scalar_one()
    assert [tuple(r) for r in timers] == [("g2", "G4")]
    assert paid_events == 5


def test_good_jsonl_imports_every_order(shops, tmp_path):
    ctx = shops
    path = write(tmp_path, "orders.jsonl", [
        order_json("j1"),
        "",  # blank lines are skipped
        order_json("j2", group={"id": "gj", "size": 2}),
        order_json("j3", buyer_id="bY", group={"id": "gj", "size": 2}),
    ])
    report = import_orders(ctx, path)
    assert report.ok and report.written, report.rejections
    assert report.orders == 3
    assert orders.get_group(ctx, PLATFORM, "gj")["status"] == "formed"
    assert count(ctx, t.orders) == 3


def test_one_bad_csv_row_imports_nothing_and_the_report_names_its_line_and_field(shops, tmp_path):
    ctx = shops
    path = write(tmp_path, "orders.csv", [
        HEADER,
        csv_line("o1"),
        csv_line("o2", group="g1", size="2"),
        csv_line("o3", "s1"),
        csv_line("o3", "s2", qty="abc"),  # line 5: not a number
        csv_line("o4"),
    ])
    report = import_orders(ctx, path)
    assert not report.ok and not report.written
    assert [(r.line, r.field) for r in report.rejections] == [(5, "quantity")]
    assert "whole number" in report.rejections[0].message  # the API's message for the same error (POST /v1/orders)
    assert count(ctx, t.orders) == count(ctx, t.groups) == count(ctx, t.events) == count(ctx, t.timers) == 0


def test_E4_unknown_categories_are_rejected_at_their_line_and_field(shops, tmp_path):
    ctx = shops
    setup.put_category(ctx, PLATFORM, code="fresh", name="Fresh", no_reason_return=False, statutory_exclusion="perishable",
                       after_sales_days=None, warranty_days=None)
    path = write(tmp_path, "orders.csv", [
        HEADER,
        csv_line("o1", category="fresh"),
        csv_line("o2", "s1"),
        csv_line("o2", "s2", category="aparel"),  # line 4: a typo would drop the item's terms
        csv_line("o3", category="frsh", qty="abc"),  # line 5: the general path (not a number) reports its own error
        csv_line("o4", category="Fresh"),  # line 6: codes are exact
    ])
    report = import_orders(ctx, path)
    assert not report.written and count(ctx, t.orders) == 0
    assert [(r.line, r.field) for r in report.rejections] == [(4, "category"), (5, "quantity"), (6, "category")]
    message = report.rejections[0].message
    assert "aparel" in message and "apparel, fresh" in message and message.endswith("(E4)"), message
    path = write(tmp_path, "orders.jsonl", [
        order_json("j1"),
        order_json("j2", items=[{"sku": "s1", "title": "A", "category": "apparel", "quantity": 1, "unit_price_fen": 100},
                                {"sku": "s2", "title": "B", "category": "nope", "quantity": 1, "unit_price_fen": 100}]),
    ])
    report = import_orders(ctx, path)
    assert [(r.line, r.field) for r in report.rejections] == [(2, "items[1].category")]
    assert count(ctx, t.orders) == 0


def test_one_bad_jsonl_line_imports_nothing(shops, tmp_path):
    ctx = shops
    path = write(tmp_path, "orders.jsonl", [
        order_json("j1"),
        order_json("j2", paid_at="2026-03-01T01:00:00"),  # T0: naive instant
        "{not json",
        order_json("j4", shipping_fee_fen=-1),
    ])
    report = import_orders(ctx, path)
    assert not report.written
    assert [(r.line, r.field) for r in report.rejections] == [(2, "paid_at"), (3, "(line)"), (4, "shipping_fee_fen")]
    assert count(ctx, t.orders) == 0


def test_duplicate_ids_in_the_file_or_in_the_database_are_rejected(shops, tmp_path):
    ctx = shops
    orders.create_order(ctx, PLATFORM, json.loads(order_json("taken")) | {"paid_at": PAID_AT})
    path = write(tmp_path, "orders.csv", [
        HEADER,
        csv_line("o1"),
        csv_line("o2"),
        csv_line("o1", "s9"),  # line 4: o1 again, not consecutive
        csv_line("taken"),     # line 5: already in the database
    ])
    report = import_orders(ctx, path)
    assert not report.written
    assert [(r.line, r.field) for r in report.rejections] == [(4, "id"), (5, "id")]
    assert "line 2" in report.rejections[0].message
    assert "already exists" in report.rejections[1].message

    jsonl = write(tmp_path, "dup.jsonl", [order_json("j1"), order_json("j1")])
    report = import_orders(ctx, jsonl)
    assert [(r.line, r.field) for r in report.rejections] == [(2, "id")]
    assert count(ctx, t.orders) == 1  # only the order created through the service


def test_rules_of_the_domain_and_references_are_checked_before_anything_is_written(shops, tmp_path):
    ctx = shops
    path = write(tmp_path, "orders.jsonl", [
        order_json("j1", merchant_id="nobody"),                                    # unknown merchant
        order_json("j2", paid_at="2026-03-02T00:00:00+00:00"),                     # T0: after now
        order_json("j3", items=[{"sku": "s1", "title": "A", "category": "apparel", "quantity": 1, "unit_price_fen": 100}] * 2),
        order_json("j4", group={"id": "gX", "size": 2}),
        order_json("j5", merchant_id="mB", group={"id": "gX", "size": 2}),         # another merchant's group
        order_json("j6", paid_at="2026-02-25T00:00:00+00:00", group={"id": "gOld", "size": 2}),
        order_json("j7", paid_at="2026-02-27T00:00:00+00:00", group={"id": "gOld", "size": 2}),  # G1: expired
    ])
    report = import_orders(ctx, path)
    assert not report.written
    got = {r.line: r for r in report.rejections}
    assert sorted(got) == [1, 2, 3, 5, 7]
    assert got[1].field == "merchant_id"
    assert got[2].field == "paid_at"
    assert "twice" in got[3].message and "E10" in got[3].message
    assert got[5].field == "group.id"
    assert got[7].field == "group.id" and "G1" in got[7].message
    assert count(ctx, t.orders) == count(ctx, t.groups) == 0


def test_an_imported_order_joins_a_group_opened_through_the_api_and_forms_it(shops, tmp_path):
    ctx = shops
    first = json.loads(order_json("api-1", group={"id": "gA", "size": 2, "auto_complete": False}))
    first["paid_at"] = PAID_AT
    orders.create_order(ctx, PLATFORM, first)
    report = import_orders(ctx, write(tmp_path, "join.jsonl", [order_json("imp-2", buyer_id="bY", group={"id": "gA", "size": 2})]))
    assert report.written, report.rejections
    assert report.groups == 0
    assert orders.get_group(ctx, PLATFORM, "gA")["status"] == "formed"
    assert orders.get_order(ctx, PLATFORM, "api-1")["status"] == "awaiting_shipment"  # G3 reached the existing member


def test_missing_csv_columns_reject_the_header_and_dry_run_writes_nothing(shops, tmp_path):
    ctx = shops
    bad = write(tmp_path, "bad.csv", ["id,merchant_id,buyer_id,colour", "o1,mA,bX,red"])
    report = import_orders(ctx, bad)
    assert not report.written
    assert {r.field for r in report.rejections} >= {"paid_at", "sku", "colour"}
    assert all(r.line == 1 for r in report.rejections)

    good = write(tmp_path, "good.csv", [HEADER, csv_line("o1")])
    report = import_orders(ctx, good, dry_run=True)
    assert report.ok and not report.written
    assert count(ctx, t.orders) == 0


def test_format_comes_from_the_extension_or_the_option(shops, tmp_path):
    ctx = shops
    path = write(tmp_path, "orders.txt", [order_json("j1")])
    with pytest.raises(ImportFileError):
        import_orders(ctx, path)
    assert import_orders(ctx, path, "jsonl").written
