"""Migration 20261206_0017 (E4–E6, T0): orders recorded before terms were versioned are stamped with the terms and the
policy that judged them until then — on SQLite and PostgreSQL — and keep them when the category changes afterwards."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from alembic import command
from sqlalchemy import delete, select, update

from aftersales.domain import policy as policy_mod
from aftersales.service import orders, setup
from aftersales.service.context import PLATFORM, Context, Principal
from aftersales.store import tables as t
from aftersales.store.db import make_engine
from aftersales.store.migrate import alembic_config, upgrade
from aftersales.testing import ensure_merchant

BUYER = Principal("buyer", "bX")
MERCHANT = Principal("merchant", "mA")


def _refund_deadline(ctx: Context, oid: str) -> Any:
    view = orders.options(ctx, BUYER, oid, lang="en")
    return next(o for o in view["options"] if o["type"] == "refund_only")["deadline"], view


def test_E5_migration_0017_stamps_existing_orders_with_the_terms_in_force(ctx: Context, database: Any) -> None:
    ensure_merchant(ctx, "mA", ctx.now())
    setup.put_category(ctx, PLATFORM, code="kettles", name="Kettles", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=30, warranty_days=None)
    # mugs: a category of an order stored before E4 refused unknown ones; removed from the catalog below
    setup.put_category(ctx, PLATFORM, code="mugs", name="Mugs", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=None, warranty_days=None)
    orders.create_order(ctx, PLATFORM, {
        "id": "legacy", "merchant_id": "mA", "buyer_id": "bX", "paid_at": ctx.now() - timedelta(hours=1),
        "shipping_fee_fen": 0,
        "items": [{"sku": "s1", "title": "Kettle", "category": "kettles", "quantity": 1, "unit_price_fen": 100},
                  {"sku": "s2", "title": "Mug", "category": "mugs", "quantity": 1, "unit_price_fen": 100}]})
    orders.ship_order(ctx, MERCHANT, "legacy", "SF", "SF1")
    orders.deliver_order(ctx, MERCHANT, "legacy", None)
    deadline_before, _ = _refund_deadline(ctx, "legacy")
    engine = make_engine(database.url, schema=database.schema)
    try:
        command.downgrade(alembic_config(engine), "20261206_0011")  # the revision before 0017
        with engine.begin() as conn:  # the order as stored before 0017: no terms, no policy version
            conn.execute(delete(t.categories).where(t.categories.c.code == "mugs"))
            state = conn.execute(select(t.orders.c.state).where(t.orders.c.id == "legacy")).scalar_one()
            state = {k: v for k, v in state.items() if k not in ("terms", "policy_version")}
            conn.execute(update(t.orders).where(t.orders.c.id == "legacy").values(state=state))
        upgrade(engine)
        with engine.connect() as conn:
            stamped = conn.execute(select(t.orders.c.state).where(t.orders.c.id == "legacy")).scalar_one()
            versions = conn.execute(select(t.category_versions.c.code, t.category_versions.c.version,
                                           t.category_versions.c.after_sales_days)).all()
    finally:
        engine.dispose()
    assert stamped["policy_version"] == policy_mod.version_id(policy_mod.load())
    assert stamped["terms"]["kettles"]["after_sales_days"] == 30 and stamped["terms"]["kettles"]["version"] == 1
    assert stamped["terms"]["mugs"] == {"code": "mugs", "name": "mugs", "no_reason_return": True, "statutory_exclusion": None,
                                        "after_sales_days": None, "warranty_days": None, "version": None}
    assert [tuple(v) for v in versions] == [("kettles", 1, 30)]
    # The category changes afterwards: the stamped order keeps its 30-day window.
    setup.put_category(ctx, PLATFORM, code="kettles", name="Kettles", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=10, warranty_days=None)
    deadline_after, view = _refund_deadline(ctx, "legacy")
    assert deadline_after == deadline_before
    assert view["terms_versions"] == {"kettles": 1, "mugs": None}
