"""What the merchant's workbench reads beyond the queue and the case desk: how many complaints wait for the shop (K2).

Reads only; every change goes through :mod:`complaints`, :mod:`deposits` and :mod:`cases`, which decide the rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftersales.domain import case_guards
from aftersales.domain.events import Actor
from aftersales.store import search as search_index
from aftersales.store import shop_desk as store

from . import views
from .context import Context, Principal, UnitOfWork, read
from .errors import Invalid


def complaints_awaiting(ctx: Context, who: Principal) -> int:
    """K2: complaints the platform accepted about ``who``'s shop that still wait for its answer (0 for anyone else)."""
    if who.role != "merchant" or not who.subject_id:
        return 0
    merchant_id = who.subject_id
    return read(ctx, lambda uow: store.complaints_awaiting(uow.conn, merchant_id))


# --- S1: what needs the shop, and finding a case -------------------------------------------------------------------
SEARCH_SCAN = 500


def _row(uow: UnitOfWork, r: Any, who: Principal, ctx: Context, lang: str) -> dict[str, Any]:
    """A case as the workbench lists it, with its buyer and product (the first item's title)."""
    order = uow.tracker.get_order(r.order_id)
    assert order is not None  # a case row always has its order
    view = views.case_view(order.case(r.id), order, r.refunded_fen, actor=who.actor, policy=ctx.policy, lang=lang,
                           tz=ctx.policy.timezone)
    items = (r.order_state or {}).get("items") or []
    return {**view, "buyer_id": r.buyer_id, "product": items[0].get("title") if items else None,
            "tracking_no": (r.order_state or {}).get("tracking_no"), "assignee_id": r.assignee_id}


def needs_action(ctx: Context, who: Principal, *, lang: str, limit: int = 200) -> list[dict[str, Any]]:
    """S1: the shop's cases whose next step is the shop's (``case_guards.waits_for``), nearest deadline first."""
    who.require("merchant")
    merchant_id = who.subject_id
    assert merchant_id is not None
    statuses = [s.value for s in case_guards.statuses_with_actions(Actor.MERCHANT)]

    def q(uow: UnitOfWork) -> list[dict[str, Any]]:
        rows = store.needs_action_rows(uow.conn, merchant_id, statuses, limit=limit)
        uow.tracker.load_orders(r.order_id for r in rows)
        return [_row(uow, r, who, ctx, lang) for r in rows if _waits_for_shop(uow, r, ctx)]

    return read(ctx, q)


def _waits_for_shop(uow: UnitOfWork, r: Any, ctx: Context) -> bool:
    order = uow.tracker.get_order(r.order_id)
    assert order is not None
    return case_guards.waits_for(Actor.MERCHANT, order.case(r.id), order, ctx.policy)


def staff(ctx: Context, who: Principal) -> list[dict[str, str]]:
    """S1: the shop's users, whom a case can be assigned to (empty for anyone but a merchant)."""
    if who.role != "merchant" or not who.subject_id:
        return []
    merchant_id = who.subject_id
    return read(ctx, lambda uow: [{"id": u.id, "name": u.display_name, "username": u.username}
                                  for u in store.shop_users(uow.conn, merchant_id)])


def arrived_since(ctx: Context, who: Principal, since: datetime) -> int:
    """S1: how many of the shop's cases were opened after ``since`` (the queue's "N new cases arrived")."""
    who.require("merchant")
    merchant_id = who.subject_id
    assert merchant_id is not None
    return read(ctx, lambda uow: store.cases_opened_since(uow.conn, merchant_id, since))


def _matches(r: Any, term: str) -> bool:
    """Prefix, case-insensitive: one of the case's search terms as it is now (its order's and its own: ids, SKU, a
    title or a word of it, tracking numbers — :func:`aftersales.store.search.terms`) starts with ``term``."""
    return any(v.startswith(term) for v in search_index.state_terms(r.order_id, r.order_state or {}, [r.state or {}]))


def search(ctx: Context, who: Principal, term: str, *, lang: str, limit: int = 50) -> list[dict[str, Any]]:
    """S1: the shop's open and closed cases by order id, case id, buyer id, SKU, title or tracking number (prefix,
    case-insensitive), newest first."""
    who.require("merchant")
    merchant_id = who.subject_id
    assert merchant_id is not None
    text = term.strip()
    if not text or len(text) > 64 or "\x00" in text:
        raise Invalid("Search for 1 to 64 characters.")
    low = text.lower()

    def q(uow: UnitOfWork) -> list[dict[str, Any]]:
        rows = store.search_rows(uow.conn, merchant_id, low, limit=SEARCH_SCAN)
        return [_row(uow, r, who, ctx, lang) for r in rows if _matches(r, low)][:limit]

    return read(ctx, q)
