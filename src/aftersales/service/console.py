"""Reads of the platform console that no single API call gives: every merchant's deposit at a glance (D1).

The figures are the deposit service's own (:func:`aftersales.service.deposits.state`, derived from the ledger),
read for every merchant in one transaction so that the table is one consistent picture.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from aftersales.store import tables as t

from . import deposits
from .context import Context, Principal, UnitOfWork, read


def deposits_overview(ctx: Context, who: Principal) -> list[dict[str, Any]]:
    """D1 for the platform: each merchant with balance, required, debt, restriction and pending withdrawals,
    restricted merchants first."""
    who.require("platform")

    def q(uow: UnitOfWork) -> list[dict[str, Any]]:
        w = t.withdrawals.c
        pending: dict[str, int] = {m: int(n) for m, n in uow.conn.execute(
            select(w.merchant_id, func.count()).where(w.status == "pending").group_by(w.merchant_id)).all()}
        out = []
        for row in uow.conn.execute(select(t.merchants).order_by(t.merchants.c.name, t.merchants.c.id)).all():
            view = deposits._view(row, deposits.state(uow.conn, ctx, row.id))
            out.append({**view, "name": row.name, "pending_withdrawals": int(pending.get(row.id, 0))})
        out.sort(key=lambda m: (not m["restricted"], m["name"], m["merchant_id"]))
        return out

    return read(ctx, q)


__all__ = ["deposits_overview"]
