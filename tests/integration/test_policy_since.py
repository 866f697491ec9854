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

import pytest
from alembic import command
from sqlalchemy import insert, select, update

from aftersales import importer
from aftersales.domain import policy as policy_mod
from aftersales.service import orders, setup, terms
from aftersales.service.context import PLATFORM, Context, UnitOfWork
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
    """Only what a unit of work that committed ensured is remembered as stored: not what one that rolled back
    ensured, nor what a savepoint that rolled back ensured in one that committed, nor what a transaction outside a
    unit of work ensured — the next unit of work writes those versions' rows again."""
    now = ctx.now()
    rolled_back = replace(ctx.policy, no_reason_days=8)
    in_savepoint = replace(ctx.policy, no_reason_days=9)
    outside = replace(ctx.policy, no_reason_days=10)
    with UnitOfWork(ctx) as uow:  # never committed
        terms_store.ensure_policy_version(uow.conn, rolled_back, now, judged_at=now)
    with UnitOfWork(ctx) as uow:
        savepoint = uow.conn.begin_nested()
        terms_store.ensure_policy_version(uow.conn, in_savepoint, now, judged_at=now)
        savepoint.rollback()
        uow.commit()
    with ctx.engine.connect() as conn:
        with conn.begin():
            terms_store.ensure_policy_version(conn, outside, now, judged_at=now)
        with conn.begin():  # another transaction of the same connection
            conn.execute(select(t.policy_versions.c.id)).all()
    for policy in (rolled_back, in_savepoint, outside):
        with sql_statements(ctx.engine) as seen, UnitOfWork(ctx) as uow:
            vid = terms_store.ensure_policy_version(uow.conn, policy, now, judged_at=now)
            uow.commit()
        assert _writes_version(seen), policy
        with ctx.engine.connect() as conn:
            assert terms_store.load_policy_version(conn, vid) == policy
    with sql_statements(ctx.engine) as seen, UnitOfWork(ctx) as uow:  # now committed by a unit of work: known
        terms_store.ensure_policy_version(uow.conn, outside, now, judged_at=now)
        uow.commit()
    assert not _writes_version(seen)


def test_T0_a_version_whose_COMMIT_failed_is_written_by_the_next_unit_of_work(ctx: Context, monkeypatch: Any) -> None:
    """A version is remembered as stored only once the COMMIT that wrote it has succeeded: a COMMIT the database
    refused (a lost connection, a failed check at commit) leaves nothing remembered."""
    now = ctx.now()
    policy = replace(ctx.policy, no_reason_days=11)

    def refused(dbapi_connection: Any) -> None:  # the database ends the transaction without committing it
        dbapi_connection.rollback()
        raise RuntimeError("the COMMIT was refused")

    monkeypatch.setattr(ctx.engine.dialect, "do_commit", refused)
    with pytest.raises(RuntimeError), UnitOfWork(ctx) as uow:
        terms_store.ensure_policy_version(uow.conn, policy, now, judged_at=now)
        uow.commit()
    monkeypatch.undo()
    with sql_statements(ctx.engine) as seen, UnitOfWork(ctx) as uow:
        vid = terms_store.ensure_policy_version(uow.conn, policy, now, judged_at=now)
        uow.commit()
    assert _writes_version(seen)
    with ctx.engine.connect() as conn:
        assert terms_store.load_policy_version(conn, vid) == policy
