"""The case search index (S1, store/search.py) on SQLite and PostgreSQL: what the unit of work, the import and
migration 20261206_0022 write is the same set of terms, and a prefix search reads one range of the index."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import delete, select

from aftersales.service import cases, orders, setup
from aftersales.service.context import PLATFORM, Context, Principal
from aftersales.store import search
from aftersales.store import tables as t
from aftersales.store.db import make_engine
from aftersales.store.migrate import alembic_config, upgrade
from aftersales.testing import ensure_merchant

BUYER = Principal("buyer", "bX")
MERCHANT = Principal("merchant", "mA")


def _shop(ctx: Context) -> None:
    ensure_merchant(ctx, "mA", ctx.now())
    setup.put_category(ctx, PLATFORM, code="apparel", name="Apparel", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=None, warranty_days=None)


def _order(ctx: Context, oid: str, title: str = "Celadon Teapot") -> None:
    orders.create_order(ctx, PLATFORM, {
        "id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": ctx.now() - timedelta(hours=1), "shipping_fee_fen": 0,
        "items": [{"sku": "TEA-1", "title": title, "category": "apparel", "quantity": 1, "unit_price_fen": 100}]})
    orders.ship_order(ctx, MERCHANT, oid, "SF", f"SF-{oid}")
    orders.deliver_order(ctx, MERCHANT, oid, None)


def _stored(ctx: Context) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with ctx.engine.connect() as conn:
        for r in conn.execute(select(t.search_terms.c.order_id, t.search_terms.c.term)):
            out.setdefault(r.order_id, set()).add(r.term)
    return out


def test_S1_the_unit_of_work_writes_each_orders_terms_as_its_aggregate_has_them(ctx: Context) -> None:
    _shop(ctx)
    _order(ctx, "o-1", "景德镇青瓷茶壶")
    case = cases.open_case(ctx, BUYER, {"order_id": "o-1", "type": "return_refund", "reason": "no_reason"}, lang="en")
    stored = _stored(ctx)["o-1"]
    assert {"o-1", "bx", "tea-1", "景德镇青瓷茶壶", "茶壶", "sf-o-1", case["id"].lower()} <= stored
    with ctx.engine.connect() as conn:
        row = conn.execute(select(t.orders.c.state).where(t.orders.c.id == "o-1")).scalar_one()
        case_states = [r.state for r in conn.execute(select(t.cases.c.state).where(t.cases.c.order_id == "o-1"))]
    assert stored == set(search.state_terms("o-1", row, case_states))  # the writer and the migration agree
    with ctx.engine.connect() as conn:
        assert search.order_ids(conn, "mA", "茶", limit=10) == ["o-1"]
        assert search.order_ids(conn, "mA", "tea-", limit=10) == ["o-1"]
        assert search.order_ids(conn, "mB", "tea-", limit=10) == []  # T2: another shop's range
        assert search.order_ids(conn, "mA", "ea-", limit=10) == []  # a prefix, not a substring


def test_S1_migration_0022_indexes_the_orders_stored_before_it(ctx: Context, database: Any) -> None:
    _shop(ctx)
    _order(ctx, "legacy-1")
    _order(ctx, "legacy-2", "Blue Mug")
    cases.open_case(ctx, BUYER, {"order_id": "legacy-2", "type": "return_refund", "reason": "no_reason"}, lang="en")
    written = _stored(ctx)
    engine = make_engine(database.url, schema=database.schema)
    try:
        cfg = alembic_config(engine)
        before = ScriptDirectory.from_config(cfg).get_revision("20261206_0022").down_revision
        with engine.begin() as conn:
            conn.execute(delete(t.search_terms))
        command.downgrade(cfg, str(before))
        upgrade(engine)
    finally:
        engine.dispose()
    assert _stored(ctx) == written
