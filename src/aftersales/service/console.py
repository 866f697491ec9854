"""Reads of the platform console that no single API call gives: every merchant's deposit at a glance (D1).

The figures are the deposit service's own (:func:`aftersales.service.deposits.state`, derived from the ledger),
read for every merchant in one transaction so that the table is one consistent picture.
"""

from __future__ import annotations

from typing import Any

from aftersales.store import deposits as store

from . import deposits
from .context import Context, Principal, UnitOfWork, read


def deposits_overview(ctx: Context, who: Principal) -> list[dict[str, Any]]:
    """D1 for the platform: each merchant with balance, required, debt, restriction and pending withdrawals,
    restricted merchants first."""
    who.require("platform")

    def q(uow: UnitOfWork) -> list[dict[str, Any]]:
        pending = store.pending_counts(uow.conn)
        out = []
        for row in store.merchants_by_name(uow.conn):
            view = deposits._view(row, deposits.state(uow, ctx, row.id))
            out.append({**view, "name": row.name, "pending_withdrawals": int(pending.get(row.id, 0))})
        out.sort(key=lambda m: (not m["restricted"], m["name"], m["merchant_id"]))
        return out

    return read(ctx, q)


def shops(ctx: Context, who: Principal) -> list[tuple[str, str]]:
    """Every merchant as (id, name), by name: the console's choices of a shop (users, filters)."""
    who.require("platform")
    return read(ctx, lambda uow: [(r.id, r.name) for r in store.merchants_by_name(uow.conn)])


__all__ = ["deposits_overview", "shops"]
