"""Cases: open, act, read, list, events (E1–E10, M1–M8, C1, F1, P1, P2)."""

from __future__ import annotations

import base64
import re
import secrets
import time
from datetime import datetime
from typing import Any

from sqlalchemy import or_

from aftersales.domain import cases as dcases
from aftersales.domain.cases import Action
from aftersales.domain.opening import open_case as domain_open_case
from aftersales.store import repositories as repo
from aftersales.store import tables as t

from . import views
from .context import Context, Principal, UnitOfWork, read, run
from .errors import Invalid, NotFound, require_version
from .orders import load_order
from .payments import settle_new_refunds
from .terms import order_policy

PERSON_ACTIONS = frozenset(a.value for a in Action)


def new_case_id() -> str:
    """Time-ordered, unguessable case ids (cursor pagination follows creation order)."""
    return f"cs_{time.time_ns() // 1000:014x}{secrets.token_hex(4)}"


def _case_dict(ctx: Context, uow: UnitOfWork, who: Principal, order: Any, case: Any, lang: str) -> dict[str, Any]:
    view = views.case_view(case, order, case.refunded_fen(order), actor=who.actor, policy=ctx.policy, lang=lang,
                           tz=ctx.policy.timezone)
    # E8: every answer on a case (a cancellation above all) states how many cancellations the buyer has left.
    view["cancellations_left"] = max(0, order_policy(ctx, uow.conn, order).max_buyer_cancellations - order.buyer_cancellations)
    return view


def _load_case(uow: UnitOfWork, who: Principal, case_id: str, *, lock: bool = False) -> tuple[Any, Any]:
    order = uow.tracker.get_order_of_case(case_id, lock=lock)
    if order is None:
        raise NotFound("case", case_id)
    from .orders import can_see

    if not can_see(who, order):
        raise NotFound("case", case_id)
    return order, order.case(case_id)


def _shop_closed(uow: UnitOfWork, merchant_id: str) -> bool:
    row = repo.merchant(uow.conn, merchant_id)
    return bool(row is not None and row.closed)


def open_case(ctx: Context, who: Principal, data: dict[str, Any], *, lang: str) -> dict[str, Any]:
    """Open a case: the buyer, or the merchant on the buyer's behalf (E7)."""
    who.require("buyer", "merchant")

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        order = load_order(uow, who, data["order_id"], lock=True)
        group = uow.tracker.get_group(order.group_id) if order.group_id else None
        items = {i["sku"]: i["quantity"] for i in data["items"]} if data.get("items") else None
        if data.get("items") and len(items or {}) != len(data["items"]):
            raise Invalid("each sku may appear once in items")
        case = domain_open_case(
            order, case_id=new_case_id(), actor=who.actor, case_type=data["type"], reason=data["reason"], now=uow.now,
            policy=order_policy(ctx, uow.conn, order), categories=repo.categories(uow.conn), group=group, items=items,
            refund_fen=data.get("refund_fen"), description=data.get("description"),
            buyer_consent=bool(data.get("buyer_consent")),
        )
        settle_new_refunds(order, ctx.gateway, uow.now)  # E7: a merchant-opened refund_only is refunded at once
        return _case_dict(ctx, uow, who, order, case, lang)

    return run(ctx, cmd)


def act(ctx: Context, who: Principal, case_id: str, action: str, params: dict[str, Any], *,
        if_match: int | None, lang: str) -> dict[str, Any]:
    """Take a person's action on a case; the built-in payment route settles refunds at once (F1)."""
    if action not in PERSON_ACTIONS:
        raise NotFound("action", action)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        order, case = _load_case(uow, who, case_id, lock=True)
        require_version("case", case.version, if_match)
        policy = order_policy(ctx, uow.conn, order)  # T0: the policy version the order was paid under
        dcases.act(order, case_id, Action(action), who.actor, uow.now, policy, **params)
        if (action == Action.RULE and case.ruling is not None and case.ruling.outcome == "refund"
                and _shop_closed(uow, order.merchant_id)):
            # P2: a closed shop will not pay the ruling — the platform pays it at once.
            dcases.act(order, case_id, Action.ADVANCE_COMPENSATE, who.actor, uow.now, policy, reason="shop_closed")
        settle_new_refunds(order, ctx.gateway, uow.now)
        return _case_dict(ctx, uow, who, order, case, lang)

    return run(ctx, cmd)


def get_case(ctx: Context, who: Principal, case_id: str, *, lang: str) -> dict[str, Any]:
    def q(uow: UnitOfWork) -> dict[str, Any]:
        order, case = _load_case(uow, who, case_id)
        return _case_dict(ctx, uow, who, order, case, lang)

    return read(ctx, q)


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


#: What a cursor may decode to: an id as the server issues them (ASCII letters, digits, ``_.:-``) — or, for the
#: deadline queue, ``<RFC 3339 instant>|<id>``. Anything else ("²", NUL, spaces …) is no cursor of this server.
CURSOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")
CURSOR_DEADLINE = re.compile(r"[0-9T:.+-]{0,40}\|[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")


def decode_cursor(cursor: str | None, *, shape: re.Pattern[str] = CURSOR_ID) -> str | None:
    if not cursor:
        return None
    try:
        value = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise Invalid("cursor is not one this server issued") from None
    if not shape.fullmatch(value):  # the server only issues ASCII ids (and NUL breaks PostgreSQL)
        raise Invalid("cursor is not one this server issued")
    return value


#: The largest id a cursor may carry: a BIGINT. A larger number (``99999999999999999999``) is no id this server
#: issued, and SQLite cannot even bind it.
MAX_CURSOR_ID = 2**63 - 1


def numeric_cursor(raw: str | None) -> int | None:
    """A plain id cursor (ledger transactions, webhook deliveries): ASCII digits of a BIGINT, else 422. (``"²"``
    is a digit to ``str.isdigit`` and not to ``int``.)"""
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > MAX_CURSOR_ID:
        raise Invalid("cursor is not one this server issued")
    return int(raw)


def decode_id_cursor(cursor: str | None) -> int | None:
    """A cursor over a table's integer ids (events, messages …): the id to continue after, or None for the start."""
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    return numeric_cursor(raw)


def list_cases(ctx: Context, who: Principal, *, status: str | None, order_id: str | None, merchant_id: str | None,
               due_before: datetime | None, cursor: str | None, limit: int, lang: str,
               sort: str = "created", case_type: str | None = None, reason: str | None = None,
               search: str | None = None, open_only: bool = False) -> dict[str, Any]:
    """Cases the caller may see. ``sort="deadline"`` is the work queue (P1 agents, S1 merchants): cases without a
    pending automatic action first (flagged overdue, or waiting on a person with no clock), then by nearest deadline.
    The workbench's queue also filters by type and reason, finds a case by its id or its order's id (``search``) and
    may leave closed cases out (``open_only``)."""
    where = _tenant_where(who)
    if status:
        where.append(t.cases.c.status == status)
    elif open_only:
        where.append(t.cases.c.status != dcases.CaseStatus.CLOSED.value)
    if case_type:
        where.append(t.cases.c.type == case_type)
    if reason:
        where.append(t.cases.c.reason == reason)
    if search:
        where.append(or_(t.cases.c.id == search, t.cases.c.order_id == search))
    if order_id:
        where.append(t.cases.c.order_id == order_id)
    if merchant_id:
        where.append(t.cases.c.merchant_id == merchant_id)
    if due_before:
        where.append(t.cases.c.due_at < due_before)
    by_deadline = sort == "deadline"
    after = decode_cursor(cursor, shape=CURSOR_DEADLINE if by_deadline else CURSOR_ID)
    if by_deadline and after is not None:
        due, _, cid = after.partition("|")
        try:
            key: Any = (datetime.fromisoformat(due) if due else None, cid)
        except ValueError:
            raise Invalid("cursor is not one this server issued") from None
        if not cid or (key[0] is not None and key[0].tzinfo is None):
            raise Invalid("cursor is not one this server issued")
    else:
        key = after

    def q(uow: UnitOfWork) -> dict[str, Any]:
        rows = (repo.case_rows_by_deadline(uow.conn, where=where, after=key, limit=limit) if by_deadline
                else repo.case_rows(uow.conn, where=where, after=key, limit=limit))
        # A case's allowed actions depend on its order (C1, E8, M2, M4 …): the page's orders load in two queries.
        uow.tracker.load_orders(r.order_id for r in rows[:limit])
        items = []
        for r in rows[:limit]:
            order = uow.tracker.get_order(r.order_id)
            assert order is not None  # a case row always has its order
            items.append(views.case_view(order.case(r.id), order, r.refunded_fen, actor=who.actor, policy=ctx.policy,
                                         lang=lang, tz=ctx.policy.timezone, refunds=False))
        nxt = None
        if len(rows) > limit:
            last = rows[limit - 1]
            nxt = encode_cursor(f"{last.due_at.isoformat() if last.due_at else ''}|{last.id}" if by_deadline else last.id)
        return {"items": items, "next_cursor": nxt}

    return read(ctx, q)


def _tenant_where(who: Principal) -> list[Any]:
    """T2: a merchant sees its own cases, a buyer theirs, the platform all."""
    if who.role == "merchant":
        return [t.cases.c.merchant_id == who.subject_id]
    if who.role == "buyer":
        return [t.cases.c.buyer_id == who.subject_id]
    return []


def count_by_status(ctx: Context, who: Principal) -> dict[str, int]:
    """How many of the caller's cases are in each status (S1: the queue's counts per status)."""
    return read(ctx, lambda uow: repo.case_counts_by_status(uow.conn, where=_tenant_where(who)))


def case_events(ctx: Context, who: Principal, case_id: str, *, cursor: str | None, limit: int) -> dict[str, Any]:
    after = decode_id_cursor(cursor)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        _load_case(uow, who, case_id)
        rows = repo.case_events(uow.conn, case_id, after=after, limit=limit)
        nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return {"items": [views.event_view(r) for r in rows[:limit]], "next_cursor": nxt}

    return read(ctx, q)


__all__ = ["act", "case_events", "count_by_status", "get_case", "list_cases", "open_case", "or_"]
