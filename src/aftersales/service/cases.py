"""Cases: open, act, read, list, events (E1–E10, M1–M8, C1, F1, P1, P2)."""

from __future__ import annotations

import base64
import logging
import re
import secrets
import time
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_

from aftersales.domain import case_guards
from aftersales.domain import cases as dcases
from aftersales.domain.addresses import ReturnAddress
from aftersales.domain.cases import Action
from aftersales.domain.errors import DomainError, InvalidInput
from aftersales.domain.events import Actor
from aftersales.domain.messages import N_
from aftersales.domain.opening import open_case as domain_open_case
from aftersales.domain.orders import Order
from aftersales.store import replay as replay_store
from aftersales.store import repositories as repo
from aftersales.store import return_addresses as address_store
from aftersales.store import shop_desk as desk_store
from aftersales.store import tables as t

from . import return_addresses, views
from .context import IDEMPOTENCY_CLAIM, Context, Principal, UnitOfWork, read, run
from .errors import Conflict, Invalid, NotFound, require_version
from .orders import load_order
from .payments import settle_new_refunds
from .terms import order_policy

log = logging.getLogger(__name__)

PERSON_ACTIONS = frozenset(a.value for a in Action)


def new_case_id() -> str:
    """Time-ordered, unguessable case ids (cursor pagination follows creation order)."""
    return f"cs_{time.time_ns() // 1000:014x}{secrets.token_hex(4)}"


def _case_dict(ctx: Context, uow: UnitOfWork, who: Principal, order: Any, case: Any, lang: str) -> dict[str, Any]:
    view = views.case_view(case, order, case.refunded_fen(order), actor=who.actor, policy=ctx.policy, lang=lang,
                           tz=ctx.policy.timezone)
    # E8: every answer on a case (a cancellation above all) states how many cancellations the buyer has left.
    view["cancellations_left"] = max(0, order_policy(ctx, uow.conn, order).max_buyer_cancellations - order.buyer_cancellations)
    view["assignee_id"] = uow.tracker.assignees.get(case.id)  # S1, read with the case
    return view


def _load_case(uow: UnitOfWork, who: Principal, case_id: str, *, lock: bool = False) -> tuple[Any, Any]:
    order = uow.tracker.get_order_of_case(case_id, lock=lock)
    if order is None:
        raise NotFound("case", case_id)
    from .orders import can_see

    if not can_see(who, order):
        raise NotFound("case", case_id)
    return order, order.case(case_id)


def address_approved_returns(conn: Connection, order: Order, address: ReturnAddress | None = None) -> None:
    """The approval step (M1, M5): every return approved in ``order``'s pending events and not yet addressed goes to
    ``address`` (the merchant's choice), or else to the shop's default return address, or to none when the shop has
    none (the event then says ``return_address: null``). Every service path that can approve a return runs it right
    after acting — the merchant's approve (single or bulk), a return approved at opening (E7), the buyer accepting an
    exchange or declining an offer, and the automatic actions (M1's approval, a lapsed offer; service/deadlines.py) —
    so the case and the approval's event carry the address before anything is answered or written."""
    todo = dcases.returns_to_address(order)
    if not todo:
        return
    if address is None:
        row = address_store.default(conn, order.merchant_id)
        address = return_addresses.snapshot(row) if row is not None else None
    for case, approval in todo:
        dcases.ship_return_to(case, approval, address)


def _shop_closed(uow: UnitOfWork, merchant_id: str) -> bool:
    row = repo.merchant(uow.conn, merchant_id)
    return bool(row is not None and row.closed)


def open_case(ctx: Context, who: Principal, data: dict[str, Any], *, lang: str) -> dict[str, Any]:
    """Open a case: the buyer, or the merchant on the buyer's behalf (E7)."""
    who.require("buyer", "merchant")

    refused: dict[str, Any] = {}

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        refused.clear()
        order = load_order(uow, who, data["order_id"], lock=True)
        group = uow.tracker.get_group(order.group_id) if order.group_id else None
        items = {i["sku"]: i["quantity"] for i in data["items"]} if data.get("items") else None
        if data.get("items") and len(items or {}) != len(data["items"]):
            raise Invalid("each sku may appear once in items")
        try:
            case = domain_open_case(
                order, case_id=new_case_id(), actor=who.actor, case_type=data["type"], reason=data["reason"],
                now=uow.now, policy=order_policy(ctx, uow.conn, order), categories=repo.categories(uow.conn),
                group=group, items=items, refund_fen=data.get("refund_fen"), description=data.get("description"),
                buyer_consent=bool(data.get("buyer_consent")),
            )
        except DomainError as exc:
            if REFUSAL_RULE.fullmatch(exc.rule) and not isinstance(exc, InvalidInput):
                refused.update(order_id=order.id, merchant_id=order.merchant_id, actor=str(who.actor),
                               case_type=str(data["type"]), reason=str(data["reason"]), items=items,
                               refund_fen=data.get("refund_fen"), buyer_consent=bool(data.get("buyer_consent")),
                               rule=exc.rule, at=uow.now)
            raise
        settle_new_refunds(order, ctx.gateway, uow.now)  # E7: a merchant-opened refund_only is refunded at once
        address_approved_returns(uow.conn, order)  # E7 + M5: a return approved at opening: its address
        return _case_dict(ctx, uow, who, order, case, lang)

    try:
        return run(ctx, cmd)
    except DomainError:
        if refused:
            _record_refusal(ctx, dict(refused))
        raise


#: Refusals of eligibility (E1–E9) are kept for the what-if replay (issue 15); E10 (an amount) and input errors are not.
REFUSAL_RULE = re.compile(r"E[1-9]")


def _record_refusal(ctx: Context, values: dict[str, Any]) -> None:
    """Record a refused opening in a transaction of its own: the refusal the caller gets is the same whether or not
    this succeeds (a failure here is logged, never answered)."""
    try:
        run(ctx, lambda uow: replay_store.record_refused_opening(uow.conn, **values))
    except Exception:  # the refusal is the answer; its record is best effort
        log.exception("could not record the refused opening of order %s", values.get("order_id"))


def _act_command(ctx: Context, who: Principal, case_id: str, action: str, params: dict[str, Any], *,
                 if_match: int | None, lang: str, settle: bool = True) -> Any:
    """The one code path of a person's action on a case (a single action, and each row of a bulk action).
    ``settle=False`` (a dry run, rolled back) leaves new refunds pending: no payment gateway is asked anything."""
    if action not in PERSON_ACTIONS:
        raise NotFound("action", action)
    params = dict(params)
    # M5: the merchant may say which of the shop's return addresses the return goes to (else: the default).
    address_id = params.pop("return_address_id", None) if action == Action.APPROVE else None

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        order, case = _load_case(uow, who, case_id, lock=True)
        require_version("case", case.version, if_match)
        policy = order_policy(ctx, uow.conn, order)  # T0: the policy version the order was paid under
        address = None
        if address_id is not None:
            if case.type not in dcases.RETURN_TYPES:
                raise InvalidInput("M5", N_("{field} applies only to returns."), field="return_address_id")
            address = return_addresses.chosen(uow, order.merchant_id, address_id)
        dcases.act(order, case_id, Action(action), who.actor, uow.now, policy, **params)
        address_approved_returns(uow.conn, order, address)  # M5: the answer shows where it goes
        if (action == Action.RULE and case.ruling is not None and case.ruling.outcome == "refund"
                and _shop_closed(uow, order.merchant_id)):
            # P2: a closed shop will not pay the ruling — the platform pays it at once.
            dcases.act(order, case_id, Action.ADVANCE_COMPENSATE, who.actor, uow.now, policy, reason="shop_closed")
        if settle:
            settle_new_refunds(order, ctx.gateway, uow.now)
        return _case_dict(ctx, uow, who, order, case, lang)

    return cmd


def act(ctx: Context, who: Principal, case_id: str, action: str, params: dict[str, Any], *,
        if_match: int | None, lang: str) -> dict[str, Any]:
    """Take a person's action on a case; the built-in payment route settles refunds at once (F1)."""
    return run(ctx, _act_command(ctx, who, case_id, action, params, if_match=if_match, lang=lang))


#: Events of a case the buyer is not shown (the shop's staffing, S1).
SHOP_ONLY_EVENTS = ("assigned",)

#: The actions the queue takes on many cases at once, and how many cases one request may name.
BULK_ACTIONS = frozenset({Action.APPROVE.value})
MAX_BULK = 100


def bulk_act(ctx: Context, who: Principal, action: str, case_ids: list[str], *, dry_run: bool,
             lang: str, tz: str) -> dict[str, Any]:
    """S1: one action on many of the caller's cases, each checked and taken on its own exactly as a single action
    (:func:`_act_command`, in its own transaction: one refusal stops nothing else). ``dry_run`` runs every row and
    rolls it back: what would happen, nothing changed. A case the caller cannot see makes the whole request 404
    before anything is done (T2)."""
    from aftersales import i18n

    who.require("merchant")
    if action not in BULK_ACTIONS:
        raise Invalid("{action} cannot be taken on several cases at once", action=action)
    if not 1 <= len(case_ids) <= MAX_BULK:
        raise Invalid("name 1 to {limit} cases", limit=MAX_BULK)
    if len(set(case_ids)) != len(case_ids):
        raise Invalid("each case may be named once")

    def visible(uow: UnitOfWork) -> None:
        for case_id in case_ids:
            _load_case(uow, who, case_id)

    read(ctx, visible)
    results: list[dict[str, Any]] = []
    token = IDEMPOTENCY_CLAIM.set(None)  # each row commits on its own; the request's claim is marked once, below
    try:
        for case_id in case_ids:
            cmd = _act_command(ctx, who, case_id, action, {}, if_match=None, lang=lang, settle=not dry_run)
            try:
                if dry_run:
                    with UnitOfWork(ctx) as uow:  # never committed: rolled back on exit
                        case = cmd(uow)
                else:
                    case = run(ctx, cmd)
            except DomainError as exc:
                results.append({"case_id": case_id, "result": "refused", "rule": exc.rule,
                                "message": i18n.render(exc.msg, lang, tz), "case": None})
            except (Conflict, Invalid) as exc:
                results.append({"case_id": case_id, "result": "refused", "rule": exc.rule or "T2",
                                "message": exc.detail, "case": None})
            else:
                results.append({"case_id": case_id, "result": "ok", "rule": None, "message": None, "case": case})
    finally:
        IDEMPOTENCY_CLAIM.reset(token)
    out = {"action": action, "dry_run": dry_run, "results": results,
           "ok": sum(r["result"] == "ok" for r in results), "refused": sum(r["result"] == "refused" for r in results)}
    if IDEMPOTENCY_CLAIM.get() is not None:
        run(ctx, lambda uow: out)  # Idempotency-Key: the request is recorded as applied, with its whole answer
    return out


# --- S1: who handles a case --------------------------------------------------------------------------------------
def assign(ctx: Context, who: Principal, case_id: str, *, assignee: str | None, me: str | None,
           unassigned_only: bool, lang: str) -> dict[str, Any]:
    """S1: give the case to one of the shop's users (``"me"``: the signed-in user ``me``), or back to nobody
    (``None``). ``unassigned_only`` claims it only if nobody has it yet (409 otherwise). Recorded as ``assigned``
    in the case's timeline; assigning it to whom it is already with changes nothing."""
    who.require("merchant")
    if assignee == "me":
        if me is None:
            raise Invalid("'me' is the signed-in workbench user; with an API key, name the user id")
        assignee = me

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        order, case = _load_case(uow, who, case_id, lock=True)
        if assignee is not None and desk_store.shop_user(uow.conn, order.merchant_id, assignee) is None:
            raise Invalid("assignee is not a user of this shop")
        current = uow.tracker.assignees.get(case_id)
        if unassigned_only and current is not None and current != assignee:
            exc = Conflict("the case is already assigned to someone else (unassigned_only)")
            exc.rule = "S1"
            raise exc
        if current != assignee:
            if not desk_store.set_assignee(uow.conn, case_id, assignee, previous_id=current):
                raise repo.ConcurrentUpdate(case_id)  # a claim got there first: run again, and see it
            uow.tracker.assignees[case_id] = assignee
            dcases.record_assignment(order, case_id, who.actor, uow.now, assignee_id=assignee, previous_id=current,
                                     by_user_id=me)
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


#: How many rows the queue reads at a time while it keeps only the cases waiting for the merchant.
AWAITING_SCAN = 200


def list_cases(ctx: Context, who: Principal, *, status: str | None, order_id: str | None, merchant_id: str | None,
               due_before: datetime | None, cursor: str | None, limit: int, lang: str,
               sort: str = "created", case_type: str | None = None, reason: str | None = None,
               search: str | None = None, open_only: bool = False, id_prefix: str | None = None,
               due_rule: str | None = None, assignee: str | None = None, me: str | None = None,
               awaiting: str | None = None) -> dict[str, Any]:
    """Cases the caller may see. ``sort="deadline"`` is the work queue (P1 agents, S1 merchants): cases without a
    pending automatic action first (flagged overdue, or waiting on a person with no clock), then by nearest deadline.
    The workbench's queue also filters by type and reason, finds a case by its id or its order's id (``search``) and
    may leave closed cases out (``open_only``). The platform's queue finds cases by a prefix of their id or their
    order's (``id_prefix``, any case) and by the rule of their next automatic action (``due_rule``, e.g. P1, P2).

    S1: ``assignee`` is ``"me"`` (the signed-in user ``me``), ``"none"`` (nobody handles it) or a user id;
    ``awaiting="merchant"`` keeps the cases whose next move is the merchant's — where the merchant has an allowed
    action now (``case_guards.waits_for``: the transition table and the guards, as for the case's
    ``allowed_actions``)."""
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
    if id_prefix:
        where.append(desk_store.case_or_order_prefix(id_prefix))
    if due_rule:
        autos = sorted(a.value for a, r in dcases.AUTO_RULES.items() if r == due_rule)
        if not autos:
            raise Invalid("no automatic action follows rule {rule}", rule=due_rule)
        where.append(t.cases.c.due_action.in_(autos))
    if order_id:
        where.append(t.cases.c.order_id == order_id)
    if merchant_id:
        where.append(t.cases.c.merchant_id == merchant_id)
    if due_before:
        where.append(t.cases.c.due_at < due_before)
    if assignee == "me":
        if me is None:
            raise Invalid("assignee=me names the signed-in workbench user; with an API key, name the user id")
        where.append(t.cases.c.assignee_id == me)
    elif assignee == "none":
        where.append(t.cases.c.assignee_id.is_(None))
    elif assignee:
        where.append(t.cases.c.assignee_id == assignee)
    waiting_actor: Actor | None = None
    if awaiting:
        if awaiting != "merchant":
            raise Invalid("awaiting must be 'merchant'")
        waiting_actor = Actor.MERCHANT
        where.append(t.cases.c.status.in_([s.value for s in case_guards.statuses_with_actions(waiting_actor)]))
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

    def key_of(r: Any) -> Any:
        return (r.due_at, r.id) if by_deadline else r.id

    def q(uow: UnitOfWork) -> dict[str, Any]:
        kept: list[tuple[Any, Any]] = []  # (row, view), up to limit + 1 (the extra one: there is a next page)
        scan = limit if waiting_actor is None else max(limit, AWAITING_SCAN)
        position = key
        while len(kept) <= limit:
            rows = (repo.case_rows_by_deadline(uow.conn, where=where, after=position, limit=scan) if by_deadline
                    else repo.case_rows(uow.conn, where=where, after=position, limit=scan))
            batch = rows[:scan] if waiting_actor is not None else rows
            # A case's allowed actions depend on its order (C1, E8, M2, M4 …): the page's orders load in two queries.
            uow.tracker.load_orders(r.order_id for r in batch)
            for r in batch:
                order = uow.tracker.get_order(r.order_id)
                assert order is not None  # a case row always has its order
                case = order.case(r.id)
                if waiting_actor is not None and not case_guards.waits_for(waiting_actor, case, order, ctx.policy):
                    continue
                view = views.case_view(case, order, r.refunded_fen, actor=who.actor, policy=ctx.policy,
                                       lang=lang, tz=ctx.policy.timezone, refunds=False)
                kept.append((r, {**view, "assignee_id": r.assignee_id, **_queue_extras(who, case, order, ctx)}))
                if len(kept) > limit:
                    break
            if waiting_actor is None or len(rows) <= scan:
                break
            position = key_of(rows[scan - 1])
        nxt = None
        if len(kept) > limit:
            last = kept[limit - 1][0]
            nxt = encode_cursor(f"{last.due_at.isoformat() if last.due_at else ''}|{last.id}" if by_deadline else last.id)
        return {"items": [v for _, v in kept[:limit]], "next_cursor": nxt}

    return read(ctx, q)


def _queue_extras(who: Principal, case: Any, order: Any, ctx: Context) -> dict[str, Any]:
    """What the workbench's queue shows beyond the API's case (the API's answer leaves these out): the goods asked
    about, with their titles, and whether the shop may approve the case together with others (M2)."""
    titles = {i.sku: i.title for i in order.items}
    return {"products": [{"sku": sku, "title": titles.get(sku), "quantity": q} for sku, q in case.items.items()],
            "bulk_approvable": who.role == "merchant" and case_guards.unrefusable_approval(case, order, who.actor,
                                                                                            ctx.policy)}


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
        # S1: who of the shop handles the case is the shop's business (and the platform's), not the buyer's.
        hidden = SHOP_ONLY_EVENTS if who.role == "buyer" else ()
        rows = repo.case_events(uow.conn, case_id, after=after, limit=limit, exclude_kinds=hidden)
        nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return {"items": [views.event_view(r) for r in rows[:limit]], "next_cursor": nxt}

    return read(ctx, q)


__all__ = ["act", "case_events", "count_by_status", "get_case", "list_cases", "open_case", "or_"]
