"""What the merchant's workbench reads beyond the queue and the case desk: how many complaints wait for the shop (K2).

Reads only; every change goes through :mod:`complaints`, :mod:`deposits` and :mod:`cases`, which decide the rules.
"""

from __future__ import annotations

from aftersales.store import shop_desk as store

from .context import Context, Principal, read


def complaints_awaiting(ctx: Context, who: Principal) -> int:
    """K2: complaints the platform accepted about ``who``'s shop that still wait for its answer (0 for anyone else)."""
    if who.role != "merchant" or not who.subject_id:
        return 0
    merchant_id = who.subject_id
    return read(ctx, lambda uow: store.complaints_awaiting(uow.conn, merchant_id))
