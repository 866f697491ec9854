"""Migration 20261206_0010 (D2, T2): the owner columns of ledger entries are filled from the account text of the
rows already there — on SQLite and PostgreSQL — including a legacy id holding ``:`` (refused since, but stored)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic import command
from sqlalchemy import select, text

from aftersales.service import deposits, setup
from aftersales.service.context import PLATFORM, Context
from aftersales.store import tables as t
from aftersales.store.db import make_engine
from aftersales.store.migrate import alembic_config, upgrade

AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def test_D2_migration_0010_fills_the_owner_of_every_existing_entry(ctx: Context, database: Any) -> None:
    setup.create_merchant(ctx, PLATFORM, id="m_apparel", name="Shop", return_address=None)
    deposits.top_up(ctx, PLATFORM, "m_apparel", 5000)
    engine = make_engine(database.url, schema=database.schema)
    try:
        command.downgrade(alembic_config(engine), "20261206_0009")  # the revision before 0010
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO ledger_transactions (id, key, kind, at, amount_fen) "
                              "VALUES (100, 'legacy', 'deposit_top_up', :at, 7)"), {"at": AT.replace(tzinfo=None)})
            conn.execute(text("INSERT INTO ledger_entries (transaction_id, account, debit_fen, credit_fen) VALUES "
                              "(100, 'platform::cash', 7, 0), (100, 'merchant:m:legacy:deposit', 0, 7)"))
        upgrade(engine)
        with engine.connect() as conn:
            en = t.ledger_entries.c
            got = sorted(tuple(r) for r in conn.execute(select(en.account, en.owner_kind, en.owner_id)).all())
    finally:
        engine.dispose()
    assert got == [("merchant:m:legacy:deposit", "merchant", "m:legacy"), ("merchant:m_apparel:deposit", "merchant", "m_apparel"),
                   ("platform::cash", "platform", ""), ("platform::cash", "platform", "")]
