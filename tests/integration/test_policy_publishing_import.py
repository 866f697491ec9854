"""T0 (issue 15): the bulk import stamps each order with the policy version in force at its own paid_at."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from aftersales.domain.policy import version_id
from aftersales.importer import import_orders
from aftersales.service import publishing, setup
from aftersales.service.context import PLATFORM, run
from aftersales.store import tables as t


def test_T0_imported_orders_get_the_version_in_force_when_each_was_paid(ctx, tmp_path):
    setup.create_merchant(ctx, PLATFORM, id="mA", name="Shop mA", return_address="1 Return Rd")
    setup.put_category(ctx, PLATFORM, code="apparel", name="Apparel", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=None, warranty_days=None)
    start = ctx.now()
    a = version_id(ctx.policy)
    d = publishing.create_draft(ctx, PLATFORM, {**ctx.policy.as_dict(), "after_sales_days": 20}, reason="test",
                                effective_at=start + timedelta(hours=1))
    publishing.schedule(ctx, PLATFORM, d["id"])
    run(ctx, lambda uow: ctx.clock.set(uow.conn, start + timedelta(hours=2)))

    def line(oid: str, paid):
        return json.dumps({"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": paid.isoformat(),
                           "shipping_fee_fen": 500, "items": [{"sku": "s1", "title": "Shirt", "category": "apparel",
                                                               "quantity": 1, "unit_price_fen": 1999}]})

    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join([line("before", start + timedelta(minutes=30)),
                               line("after", start + timedelta(minutes=90))]) + "\n", "utf-8")
    report = import_orders(ctx, path)
    assert report.ok and report.written, report.rejections
    with ctx.engine.connect() as conn:
        stamps = {r.id: r.state["policy_version"] for r in conn.execute(select(t.orders.c.id, t.orders.c.state))}
    assert stamps == {"before": a, "after": d["version"]} and a != d["version"]
