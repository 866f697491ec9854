"""T0 (issue 15): the policy file's version is shown in force since it first judged an order — the payment of the
earliest order it judged — not since the instant it was first recorded (migration 0017 recorded it with the instant
the migration ran). On SQLite and PostgreSQL: orders created one by one, imported in bulk, and migration 0026 for the
orders 0017 stamped."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import insert, select, update

from aftersales import importer
from aftersales.domain import policy as policy_mod
from aftersales.service import orders, setup, terms
from aftersales.service.context import PLATFORM, Context
from aftersales.store import tables as t
from aftersales.store import terms as terms_store
from aftersales.store.db import make_engine
from aftersales.store.migrate import alembic_config, upgrade
from aftersales.testing import ensure_merchant, sql_statements

FILE_VERSION = policy_mod.version_id(policy_mod.load())


def _order(oid: str, paid_at: datetime) -> dict[str, Any]:
    """An order as the service takes it (``paid_at`` a datetime); ``_line`` writes it as a line of an import file."""
    return {"id": oid, "merchant_id": "mA", "buyer_id": "bX", "paid_at": paid_at, "shipping_fee_fen": 0,
            "items": [{"sku": "s1", "title": "Shirt", "category": "apparel", "quantity": 1, "unit_price_fen": 100}]}


def _line(order: dict[str, Any]) -> str:
    return json.dumps({**order, "paid_at": order["paid_at"].isoformat()}) + "\n"


def _shop(ctx: Context) -> None:
    ensure_merchant(ctx, "mA", ctx.now())
    setup.put_category(ctx, PLATFORM, code="apparel", name="Apparel", no_reason_return=True, statutory_exclusion=None,
                       after_sales_days=None, warranty_days=None)


def _since(ctx: Context) -> datetime:
    shown = terms.policy_in_force(ctx, PLATFORM)
    assert shown["version"] == FILE_VERSION and shown["draft_id"] is None
    return datetime.fromisoformat(shown["effective_at"])


def _set_since(ctx: Context, instant: datetime) -> None:
    """What migration 0017 did: the file's version recorded at the instant the migration ran."""
    with ctx.engine.begin() as conn:
        conn.execute(update(t.policy_versions).where(t.policy_versions.c.id == FILE_VERSION).values(effective_at=instant))


def test_T0_the_file_versions_since_moves_back_to_the_first_payment_it_judged_and_never_forward(ctx: Context) -> None:
    _shop(ctx)
    now = ctx.now()
    _set_since(ctx, now + timedelta(days=30))  # recorded later than what it will judge
    orders.create_order(ctx, PLATFORM, _order("o1", now - timedelta(days=5)))
    assert _since(ctx) == now - timedelta(days=5)
    orders.create_order(ctx, PLATFORM, _order("o2", now - timedelta(days=1)))  # later: the instant stays
    assert _since(ctx) == now - timedelta(days=5)
    orders.create_order(ctx, PLATFORM, _order("o3", now - timedelta(days=9)))  # earlier: back to it
    assert _since(ctx) == now - timedelta(days=9)


def test_T0_an_import_of_past_orders_moves_the_since_back_and_a_rejected_import_does_not(ctx: Context,
                                                                                         tmp_path: Path) -> None:
    _shop(ctx)
    now = ctx.now()
    _set_since(ctx, now)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_line(_order("i0", now - timedelta(days=20))) + _line({**_order("i1", now - timedelta(days=40)),
                                                                          "merchant_id": "nobody"}))
    assert importer.import_orders(ctx, bad).rejections
    assert _since(ctx) == now  # nothing was written, the version's instant included
    good = tmp_path / "good.jsonl"
    good.write_text("".join(_line(_order(f"i{n}", now - timedelta(days=d))) for n, d in ((2, 3), (3, 12), (4, 7))))
    report = importer.import_orders(ctx, good)
    assert not report.rejections and report.written
    assert _since(ctx) == now - timedelta(days=12)


def test_T0_migration_0026_dates_each_version_from_the_earliest_order_it_judged(ctx: Context, database: Any) -> None:
    _shop(ctx)
    now = ctx.now()
    orders.create_order(ctx, PLATFORM, _order("old", now - timedelta(days=3)))
    orders.create_order(ctx, PLATFORM, _order("older", now - timedelta(days=6)))
    engine = make_engine(database.url, schema=database.schema)
    try:
        command.downgrade(alembic_config(engine), "20261206_0025")
        _set_since(ctx, now + timedelta(hours=2))  # as migration 0017 left it: the instant it ran
        with engine.begin() as conn:  # a version that judged no order keeps its instant
            conn.execute(insert(t.policy_versions).values(id="unused", parameters={}, effective_at=now))
        upgrade(engine)
        with engine.connect() as conn:
            rows = dict(conn.execute(select(t.policy_versions.c.id, t.policy_versions.c.effective_at)).all())
    finally:
        engine.dispose()
    assert rows[FILE_VERSION] == now - timedelta(days=6)
    assert rows["unused"] == now
    assert _since(ctx) == now - timedelta(days=6)


def _writes_version(seen: list[tuple[str, bool]]) -> bool:
    return any("policy_versions" in sql and not sql.lstrip().upper().startswith("SELECT") for sql, _ in seen)


def test_T0_a_version_stored_since_before_a_payment_is_not_written_again_one_paid_earlier_moves_it_back(ctx: Context) -> None:
    """Issue 13: the version's statement is sent only when it could change something — the version is not known to
    this process as committed, or the payment is earlier than its known instant (which the statement moves back)."""
    _shop(ctx)
    now = ctx.now()
    orders.create_order(ctx, PLATFORM, _order("o1", now - timedelta(days=1)))
    assert _since(ctx) == now - timedelta(days=1)
    with sql_statements(ctx.engine) as seen:
        orders.create_order(ctx, PLATFORM, _order("o2", now - timedelta(hours=1)))
    assert seen and not _writes_version(seen)
    assert _since(ctx) == now - timedelta(days=1)
    with sql_statements(ctx.engine) as seen:
        orders.create_order(ctx, PLATFORM, _order("o3", now - timedelta(days=3)))
    assert _writes_version(seen)
    assert _since(ctx) == now - timedelta(days=3)


def test_T0_a_version_ensured_by_a_transaction_or_savepoint_that_rolled_back_is_written_by_the_next(ctx: Context) -> None:
    """What a rolled-back transaction (or savepoint) ensured is not remembered as stored, even when the same
    connection commits another transaction afterwards: the next transaction writes the version's row again."""
    now = ctx.now()
    rolled_back = replace(ctx.policy, no_reason_days=8)
    in_savepoint = replace(ctx.policy, no_reason_days=9)
    with ctx.engine.connect() as conn:
        with conn.begin() as tx:
            terms_store.ensure_policy_version(conn, rolled_back, now, judged_at=now)
            tx.rollback()
        with conn.begin():
            savepoint = conn.begin_nested()
            terms_store.ensure_policy_version(conn, in_savepoint, now, judged_at=now)
            savepoint.rollback()
        with conn.begin():  # commits something else on the same connection
            conn.execute(select(t.policy_versions.c.id)).all()
        for policy in (rolled_back, in_savepoint):
            with sql_statements(ctx.engine) as seen, conn.begin():
                vid = terms_store.ensure_policy_version(conn, policy, now, judged_at=now)
            assert _writes_version(seen)
            assert terms_store.load_policy_version(conn, vid) == policy
            conn.rollback()
