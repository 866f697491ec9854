"""Migration 20261206_0024 (M1): every shop's one ``return_address`` becomes the default of its new return-address
book — on SQLite and PostgreSQL; a shop without one gets an empty book."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic import command
from sqlalchemy import select, text

from aftersales.service.context import Context
from aftersales.store import tables as t
from aftersales.store.db import make_engine
from aftersales.store.migrate import alembic_config, upgrade

AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def test_M1_migration_0024_makes_each_shops_return_address_its_default(ctx: Context, database: Any) -> None:
    engine = make_engine(database.url, schema=database.schema)
    try:
        command.downgrade(alembic_config(engine), "20261206_0023")  # the revision before 0024
        with engine.begin() as conn:
            for mid, address in (("m1", " 9 Dock St\nNingbo "), ("m2", None), ("m3", "   ")):
                conn.execute(text("INSERT INTO merchants (id, name, return_address, closed, created_at) "
                                  "VALUES (:id, :id, :a, false, :at)"), {"id": mid, "a": address, "at": AT.replace(tzinfo=None)})
        upgrade(engine)
        with engine.connect() as conn:
            a = t.return_addresses.c
            got = [tuple(r) for r in conn.execute(select(a.merchant_id, a.address, a.is_default, a.archived_at, a.version)
                                                  .order_by(a.merchant_id))]
    finally:
        engine.dispose()
    assert got == [("m1", "9 Dock St\nNingbo", True, None, 1)]
