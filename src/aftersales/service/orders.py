"""Orders and groups (G1–G5): create, ship, deliver, complete; the order view; eligibility (E1–E10)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftersales.domain.catalog import require_known_category
from aftersales.domain.eligibility import Eligibility, evaluate
from aftersales.domain.errors import InvalidInput
from aftersales.domain.events import Actor
from aftersales.domain.groups import Group, open_group
from aftersales.domain.ids import require_id
from aftersales.domain.messages import N_
from aftersales.domain.orders import Order, OrderItem, OrderStatus, new_order
from aftersales.store import orders as order_store
from aftersales.store import repositories as repo

from . import terms, views
from .context import Context, Principal, UnitOfWork, read, run
from .errors import Conflict, Invalid, NotFound, require_version


def can_see(who: Principal, order: Order) -> bool:
    """T2 tenancy: the platform sees everything; a merchant its own orders; a buyer theirs."""
    if who.role == "platform":
        return True
    if who.role == "merchant":
        return order.merchant_id == who.subject_id
    return who.role == "buyer" and order.buyer_id == who.subject_id


def load_order(uow: UnitOfWork, who: Principal, order_id: str, *, lock: bool = False) -> Order:
    order = uow.tracker.get_order(order_id, lock=lock)
    if order is None or not can_see(who, order):
        raise NotFound("order", order_id)
    return order


def group_orders(uow: UnitOfWork, group: Group) -> list[Order]:
    out = []
    for oid in group.member_ids:
        order = uow.tracker.get_order(oid, lock=True)
        assert order is not None
        out.append(order)
    return out


def create_order(ctx: Context, who: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """Record a paid order; a group order opens its group or joins it (G1, G3)."""
    who.require("platform", "merchant")
    for name in ("id", "merchant_id", "buyer_id"):  # T2: the documented alphabet (the API's model checks it too)
        require_id(data[name], name)
    if data.get("group"):
        require_id(data["group"]["id"], "group.id")
    if who.role == "merchant" and data["merchant_id"] != who.subject_id:
        raise NotFound("merchant", data["merchant_id"])

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        shop, taken = repo.merchant_and_order_taken(uow.conn, data["merchant_id"], data["id"])
        if shop is None:
            raise NotFound("merchant", data["merchant_id"])
        if taken:
            raise Conflict("order {order} already exists", order=repr(data["id"]))
        g = data.get("group")
        items = [OrderItem(i["sku"], i["title"], i["category"], i["quantity"], i["unit_price_fen"], bool(i.get("exclusion_confirmed")))
                 for i in data["items"]]
        known = repo.categories(uow.conn)
        for item in items:
            require_known_category(item.sku, item.category, known)
        paid_at: datetime = data["paid_at"]
        if paid_at > uow.now:
            raise InvalidInput("T0", N_("{field} cannot be in the future."), field="paid_at")
        fixed, policy_version = terms.stamp(ctx, uow.conn, uow.now, (i.category for i in items), paid_at, categories=known)
        order = new_order(id=data["id"], merchant_id=data["merchant_id"], buyer_id=data["buyer_id"], paid_at=paid_at,
                          shipping_fee_fen=data["shipping_fee_fen"], items=items,
                          return_shipping_insured=bool(data.get("return_shipping_insured")),
                          group_id=g["id"] if g else None, terms=fixed, policy_version=policy_version)
        group = None
        if g:
            group = uow.tracker.get_group(g["id"], lock=True)
            if group is None:
                group = open_group(id=g["id"], merchant_id=order.merchant_id, size=g["size"],
                                   auto_complete=bool(g.get("auto_complete")), first=order, policy=ctx.policy)
                uow.tracker.add_group(group)
            else:
                if group.merchant_id != order.merchant_id:
                    raise NotFound("group", g["id"])
                members = group_orders(uow, group)
                group.join(order, order.paid_at, members)
        uow.tracker.add_order(order)
        return views.order_view(order, group, actor=who.actor, now=uow.now)

    return run(ctx, cmd)


def get_order(ctx: Context, who: Principal, order_id: str) -> dict[str, Any]:
    def q(uow: UnitOfWork) -> dict[str, Any]:
        order = load_order(uow, who, order_id)
        group = uow.tracker.get_group(order.group_id) if order.group_id else None
        return views.order_view(order, group, actor=who.actor, now=uow.now)

    return read(ctx, q)


def list_buyer_orders(ctx: Context, who: Principal, *, limit: int = 100) -> list[dict[str, Any]]:
    """The signed-in buyer's own orders, most recently paid first, with their groups (T2: only their own)."""
    who.require("buyer")

    def q(uow: UnitOfWork) -> list[dict[str, Any]]:
        ids = repo.buyer_order_ids(uow.conn, who.subject_id or "", limit=limit)
        uow.tracker.load_orders(ids)
        out = []
        for oid in ids:
            order = load_order(uow, who, oid)
            group = uow.tracker.get_group(order.group_id) if order.group_id else None
            view = views.order_view(order, group, actor=who.actor, now=uow.now)
            case = order.open_case()
            # The buyer's move (M2, M4/M8, M5, M7): the order is marked "action needed", with the deadline.
            view["action_needed"] = (views.iso(case.due_at) if case is not None and case.awaiting() is Actor.BUYER
                                     else None)
            out.append(view)
        return out

    return read(ctx, q)


#: The statuses ``GET /v1/orders?status=`` accepts (API.md), in the order they are listed in a refusal.
ORDER_STATUSES = tuple(s.value for s in OrderStatus)


def _order_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The (paid_at, id) a page continues after, from a cursor this server issued; a crafted one is refused (422)."""
    from .cases import CURSOR_DEADLINE, decode_cursor  # the one cursor codec of the lists

    raw = decode_cursor(cursor, shape=CURSOR_DEADLINE)
    if raw is None:
        return None
    paid, _, oid = raw.partition("|")
    try:
        paid_at = datetime.fromisoformat(paid)
    except ValueError:
        raise Invalid("cursor is not one this server issued") from None
    if paid_at.tzinfo is None:
        raise Invalid("cursor is not one this server issued")
    return paid_at, oid


def list_orders(ctx: Context, who: Principal, *, merchant_id: str | None = None, buyer_id: str | None = None,
                status: str | None = None, paid_after: datetime | None = None, paid_before: datetime | None = None,
                cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
    """``GET /v1/orders``: the orders the caller may see (T2), newest paid first (``paid_at``, then ``id``, both
    descending), as ``GET /v1/orders/{id}`` shows them. A merchant sees only its own orders and a buyer only theirs:
    a filter naming another tenant matches nothing (an empty page, never a 403 or 404 that would tell it exists).
    ``paid_after`` is inclusive, ``paid_before`` exclusive; both must carry a UTC offset."""
    from .cases import encode_cursor

    if status is not None and status not in ORDER_STATUSES:
        raise Invalid("status must be one of: {values}", values=", ".join(ORDER_STATUSES))
    for name, value in (("paid_after", paid_after), ("paid_before", paid_before)):
        if value is not None and value.tzinfo is None:
            raise Invalid("{field} must be an RFC 3339 instant with a UTC offset", field=name)
    if not 1 <= limit <= 200:
        raise Invalid("limit must be between 1 and {limit}", limit=200)
    after = _order_cursor(cursor)
    empty: dict[str, Any] = {"items": [], "next_cursor": None}
    if who.role == "merchant":
        if merchant_id is not None and merchant_id != who.subject_id:
            return empty
        merchant_id = who.subject_id
    elif who.role == "buyer":
        if buyer_id is not None and buyer_id != who.subject_id:
            return empty
        buyer_id = who.subject_id
    elif who.role != "platform":
        return empty

    def q(uow: UnitOfWork) -> dict[str, Any]:
        rows = order_store.order_page(uow.conn, merchant_id=merchant_id, buyer_id=buyer_id, status=status,
                                      paid_after=paid_after, paid_before=paid_before, after=after, limit=limit)
        page = rows[:limit]
        uow.tracker.load_orders([r.id for r in page])
        items = []
        for r in page:
            order = load_order(uow, who, r.id)  # T2 once more, on the loaded order
            group = uow.tracker.get_group(order.group_id) if order.group_id else None
            items.append(views.order_view(order, group, actor=who.actor, now=uow.now))
        nxt = None
        if len(rows) > limit:
            last = page[-1]
            nxt = encode_cursor(f"{last.paid_at.isoformat()}|{last.id}")
        return {"items": items, "next_cursor": nxt}

    return read(ctx, q)


def ship_order(ctx: Context, who: Principal, order_id: str, carrier: str, tracking_no: str, *,
               if_match: int | None = None) -> dict[str, Any]:
    who.require("platform", "merchant")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        order = load_order(uow, who, order_id, lock=True)
        require_version("order", order.version, if_match)
        order.ship(who.actor, carrier, tracking_no, uow.now)
        group = uow.tracker.get_group(order.group_id) if order.group_id else None
        return views.order_view(order, group, actor=who.actor, now=uow.now)

    return run(ctx, cmd)


def deliver_order(ctx: Context, who: Principal, order_id: str, at: datetime | None, *,
                  if_match: int | None = None) -> dict[str, Any]:
    who.require("platform", "merchant")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        order = load_order(uow, who, order_id, lock=True)
        require_version("order", order.version, if_match)
        order.deliver(who.actor, at or uow.now, uow.now)
        group = uow.tracker.get_group(order.group_id) if order.group_id else None
        return views.order_view(order, group, actor=who.actor, now=uow.now)

    return run(ctx, cmd)


def complete_group(ctx: Context, who: Principal, group_id: str, *, if_match: int | None = None) -> dict[str, Any]:
    """G5: complete a pending group early where automatic completion is allowed."""
    who.require("platform", "merchant")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        group = uow.tracker.get_group(group_id, lock=True)
        if group is None or (who.role == "merchant" and group.merchant_id != who.subject_id):
            raise NotFound("group", group_id)
        require_version("group", group.version, if_match)
        group.complete(group_orders(uow, group), who.actor, uow.now)
        return views.group_view(group, actor=who.actor, now=uow.now)

    return run(ctx, cmd)


def get_group(ctx: Context, who: Principal, group_id: str) -> dict[str, Any]:
    def q(uow: UnitOfWork) -> dict[str, Any]:
        group = uow.tracker.get_group(group_id)
        if group is None or who.role == "buyer" or (who.role == "merchant" and group.merchant_id != who.subject_id):
            raise NotFound("group", group_id)
        return views.group_view(group, actor=who.actor, now=uow.now)

    return read(ctx, q)


def eligibility(ctx: Context, uow: UnitOfWork, who: Principal, order: Order) -> Eligibility:
    group = uow.tracker.get_group(order.group_id) if order.group_id else None
    actor = who.actor if who.role != "platform" else Actor.BUYER
    return evaluate(order, actor=actor, now=uow.now, policy=terms.order_policy(ctx, uow.conn, order),
                    categories=repo.categories(uow.conn), group=group)


def options(ctx: Context, who: Principal, order_id: str, *, lang: str) -> dict[str, Any]:
    """E1–E10: what may be opened on the order now, explained in ``lang``, with the versions of the law judging it."""
    def q(uow: UnitOfWork) -> dict[str, Any]:
        order = load_order(uow, who, order_id)
        view = views.eligibility_view(eligibility(ctx, uow, who, order), lang=lang, tz=ctx.policy.timezone)
        view["policy_version"] = order.policy_version
        view["terms_versions"] = terms.terms_versions(order)
        return view

    return read(ctx, q)
