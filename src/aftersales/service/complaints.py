"""Complaints (K1 channels, K2 complaints): publish the channels, file, act, read, list, events, flag overdue limits.

Visibility (T2): the platform sees every complaint; a buyer their own; a merchant the complaints about its shop
*from acceptance on* (accepted, answered, resolved). Before that a complaint is an unscreened allegation only the
platform has judged nothing about: the merchant has nothing to do yet (its limit starts at acceptance), and one the
platform rejects at screening never reaches the shop — so it can neither pressure the buyer over a complaint that
went nowhere nor learn of it. To the merchant an unaccepted complaint is exactly an unknown id (404).

The complaint is stored as columns (no JSON state): every field is something a list filters on, the dispute record
exports, or a person reads. Its events go to ``complaint_events``; its K2 limits are ``timers`` rows (subject
``complaint``, stage = the complaint's stage) written in the same transaction as the status that starts them. Every
query is in the repository ``aftersales.store.complaints``.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from aftersales.domain import complaints as dc
from aftersales.domain.policy import Policy
from aftersales.store import complaints as store
from aftersales.store import repositories as repo

from .cases import decode_cursor, decode_id_cursor, encode_cursor
from .context import Context, Principal, UnitOfWork, read, run
from .errors import Invalid, NotFound, require_version
from .orders import can_see

#: Statuses in which the merchant sees a complaint about its shop.
MERCHANT_VISIBLE = (dc.S.ACCEPTED.value, dc.S.ANSWERED.value, dc.S.RESOLVED.value)
OPEN = tuple(s.value for s in dc.ComplaintStatus if s not in dc.FINAL)


def new_complaint_id() -> str:
    """Time-ordered, unguessable ids (cursor pagination follows filing order)."""
    return f"cp_{time.time_ns() // 1000:014x}{secrets.token_hex(4)}"


# --- K1 ---------------------------------------------------------------------------------------------------
CHANNELS: list[tuple[dc.Channel, str, str]] = [
    (dc.Channel.IN_APP_CHAT, "In-app chat with official customer service", "buyer"),
    (dc.Channel.ORDER_BUTTON, "The complaint button on the order", "buyer"),
    (dc.Channel.WECHAT, "The platform's official WeChat account", "buyer"),
    (dc.Channel.PHONE, "Customer service phone line", "platform agent"),
]


def channels(ctx: Context) -> dict[str, Any]:
    """K1: the published channels; for the phone, its hours, zone, whether it answers now and when it next opens."""

    def q(uow: UnitOfWork) -> dict[str, Any]:
        hours = dc.phone_hours(uow.now, ctx.policy)
        items = []
        for channel, name, recorded_by in CHANNELS:
            item: dict[str, Any] = {"code": channel.value, "name": name, "recorded_by": recorded_by,
                                    "always_open": channel is not dc.Channel.PHONE, "hours": None}
            if channel is dc.Channel.PHONE:
                item["hours"] = {"opens": hours.opens.strftime("%H:%M"), "closes": hours.closes.strftime("%H:%M"),
                                 "timezone": hours.timezone, "open_now": hours.open_now,
                                 "closes_at": hours.closes_at.isoformat() if hours.closes_at else None,
                                 "next_opening_at": hours.next_opening_at.isoformat()}
            items.append(item)
        return {"channels": items, "timezone": ctx.policy.timezone, "now": uow.now.isoformat(), "rule": "K1"}

    return read(ctx, q)


def may_see(who: Principal, row: Any) -> bool:
    """T2 for complaints (see the module docstring)."""
    if who.role == "platform":
        return True
    if who.role == "buyer":
        return bool(row.buyer_id == who.subject_id)
    return who.role == "merchant" and row.merchant_id == who.subject_id and row.status in MERCHANT_VISIBLE


def load_visible(uow: UnitOfWork, who: Principal, complaint_id: str, *, lock: bool = False) -> Any:
    """The complaint row if ``who`` may see it, else :class:`NotFound` (the same as an unknown id)."""
    row = store.get(uow.conn, complaint_id, lock=lock)
    if row is None or not may_see(who, row):
        raise NotFound("complaint", complaint_id)
    return row


def count_open(conn: Connection, merchant_id: str) -> int:
    """Complaints about the merchant not yet resolved or rejected (D1: a withdrawal needs none)."""
    return store.count_in(conn, merchant_id, OPEN)


# --- views ------------------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def view(c: dc.Complaint, who: Principal, now: datetime, filed_by: str, policy: Policy) -> dict[str, Any]:
    d = c.deadline
    return {
        "id": c.id, "status": c.status.value, "channel": c.channel.value, "category": c.category.value,
        "description": c.description, "order_id": c.order_id, "case_id": c.case_id, "merchant_id": c.merchant_id,
        "buyer_id": c.buyer_id, "filed_by": filed_by, "created_at": _iso(c.created_at),
        "accepted_at": _iso(c.accepted_at), "answered_at": _iso(c.answered_at), "closed_at": _iso(c.closed_at),
        "response": c.response, "outcome": c.outcome.value if c.outcome else None, "rationale": c.rationale,
        "remedies": [{"type": r.type.value, "amount_fen": r.amount_fen} for r in c.remedies],
        "flags": [{"rule": f.rule, "kind": f.kind, "at": f.at.isoformat()} for f in c.flags],
        "flagged": c.flagged,
        "deadline": {"action": d.action.value, "by": d.by.value, "due_at": d.due_at.isoformat(), "rule": d.rule,
                     "overdue": d.due_at <= now} if d else None,
        "allowed_actions": [v.value for v in c.allowed_actions(who.actor, now, policy)],
        "version": c.version,
    }


def row_view(row: Any, who: Principal, now: datetime, policy: Policy) -> dict[str, Any]:
    """The API view of a ``complaints`` row as ``who`` sees it (the dispute record uses it too)."""
    return view(store.from_row(row), who, now, row.filed_by, policy)




# --- commands ---------------------------------------------------------------------------------------------
def _subject(uow: UnitOfWork, who: Principal, data: dict[str, Any], buyer_id: str | None) -> dc.Subject:
    """Look up what the complaint names; what ``who`` may not see is unknown (404).

    K1: an agent recording a complaint for a buyer names the buyer only when no order or case does (``buyer_id``
    None: the named order's buyer); a buyer that contradicts the order's is refused by :meth:`dc.Subject.resolve`."""
    order_id, case_id, merchant_id = data.get("order_id"), data.get("case_id"), data.get("merchant_id")
    case_order_id = None
    if case_id is not None:
        case_order_id = uow.tracker.order_for_case(case_id)
        case_order = uow.tracker.get_order(case_order_id) if case_order_id else None
        if case_order is None or not can_see(who, case_order):
            raise NotFound("case", case_id)
    lookup = order_id if order_id is not None else case_order_id
    order = uow.tracker.get_order(lookup) if lookup is not None else None
    if lookup is not None and (order is None or not can_see(who, order)):
        raise NotFound("order", lookup)
    if merchant_id is not None and order is None and repo.merchant(uow.conn, merchant_id) is None:
        raise NotFound("merchant", merchant_id)
    if buyer_id is None:
        if order is None:
            raise Invalid("buyer_id: a complaint an agent records about a shop, with no order or case, names the buyer")
        buyer_id = order.buyer_id
    return dc.Subject(buyer_id=buyer_id, merchant_id=merchant_id, order_id=order_id,
                      order_merchant_id=order.merchant_id if order else None,
                      order_buyer_id=order.buyer_id if order else None, case_id=case_id, case_order_id=case_order_id)


def file(ctx: Context, who: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """K1/K2: a buyer files through the chat, the order button or WeChat; an agent records a phone complaint during
    the phone hours for the buyer of the order or case it names (or for ``buyer_id`` when it names neither)."""
    who.require("buyer", "platform")
    channel = dc.Channel(data["channel"])

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        dc.check_channel(channel, who.actor, uow.now, ctx.policy)  # K1 before any lookup: says nothing of the ids
        if who.role == "buyer":
            if data.get("buyer_id") not in (None, who.subject_id):
                raise Invalid("buyer_id is only for a phone complaint an agent records for a buyer")
            buyer_id = who.subject_id
        else:
            buyer_id = data.get("buyer_id") or None
        c = dc.file_complaint(id=new_complaint_id(), subject=_subject(uow, who, data, buyer_id), channel=channel,
                              category=dc.Category(data["category"]), description=data["description"],
                              actor=who.actor, now=uow.now, policy=ctx.policy)
        store.save(uow.conn, c, seen=None, stage_seen=None, filed_by=who.key)
        return view(c, who, uow.now, who.key, ctx.policy)

    return run(ctx, cmd)


def act(ctx: Context, who: Principal, complaint_id: str, verb: str, params: dict[str, Any], *,
        if_match: int | None) -> dict[str, Any]:
    """K2: accept, reject, respond or resolve; resolving moves the remedies' money in the same transaction."""
    v = dc.Verb(verb)
    who.require(*(a.value for a in dc.ACTORS[v]))  # the wrong role is refused before any lookup (T2)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = load_visible(uow, who, complaint_id, lock=True)
        require_version("complaint", row.version, if_match)
        c = store.from_row(row)
        if v is dc.Verb.ACCEPT:
            c.accept(who.actor, uow.now, ctx.policy)
        elif v is dc.Verb.REJECT:
            c.reject(who.actor, uow.now, ctx.policy, reason=params["reason"])
        elif v is dc.Verb.RESPOND:
            c.respond(who.actor, uow.now, ctx.policy, answer=params["answer"])
        else:
            remedies = [dc.Remedy(dc.RemedyType(r["type"]), r["amount_fen"]) for r in params.get("remedies") or []]
            c.resolve(who.actor, uow.now, ctx.policy, outcome=dc.Outcome(params["outcome"]),
                      rationale=params["rationale"], remedies=remedies)
            _pay_remedies(ctx, uow, c)
        store.save(uow.conn, c, seen=row.version, stage_seen=row.stage)
        return view(c, who, uow.now, row.filed_by, ctx.policy)

    return run(ctx, cmd)


def _pay_remedies(ctx: Context, uow: UnitOfWork, c: dc.Complaint) -> None:
    """K2 remedies move money through the deposit service (D1/D2/P2); any refusal aborts the whole resolve."""
    from .deposits import complaint_remedy

    for remedy in c.remedies:
        complaint_remedy(ctx, uow, complaint_id=c.id, merchant_id=c.merchant_id, buyer_id=c.buyer_id,
                         order_id=c.order_id, kind=remedy.type.value, amount_fen=remedy.amount_fen, at=uow.now)


def apply_timer(ctx: Context, uow: UnitOfWork, row: Any, now: datetime) -> int:
    """The deadline worker: a K2 limit ran out — flag it on the complaint (1), or drop a stale row (0)."""
    found = store.get(uow.conn, row.subject_id, lock=True)
    if found is None:
        return 0
    c = store.from_row(found)
    if not c.flag_overdue(row.action, row.stage, row.due_at):
        return 0
    store.save(uow.conn, c, seen=found.version, stage_seen=found.stage)
    return 1


# --- reads ------------------------------------------------------------------------------------------------
def get(ctx: Context, who: Principal, complaint_id: str) -> dict[str, Any]:
    return read(ctx, lambda uow: row_view(load_visible(uow, who, complaint_id), who, uow.now, ctx.policy))


def list_complaints(ctx: Context, who: Principal, *, status: str | None, merchant_id: str | None,
                    order_id: str | None, flagged: bool | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """The complaints ``who`` may see, in filing order, filtered (``flagged``: with a missed K2 limit or not)."""
    scope: dict[str, Any] = {}
    if who.role == "buyer":
        scope["buyer_id"] = who.subject_id
    elif who.role == "merchant":
        scope.update(merchant_id=who.subject_id, statuses=MERCHANT_VISIBLE)
    elif who.role != "platform":
        scope["nobody"] = True
    if merchant_id:
        if scope.get("merchant_id") not in (None, merchant_id):
            scope["nobody"] = True  # a merchant asking for another shop's complaints: none
        else:
            scope["merchant_id"] = merchant_id
    after = decode_cursor(cursor)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        rows = store.rows(uow.conn, **scope, status=status, order_id=order_id, flagged=flagged, after=after,
                          limit=limit + 1)
        nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return {"items": [row_view(r, who, uow.now, ctx.policy) for r in rows[:limit]], "next_cursor": nxt}

    return read(ctx, q)


def events(ctx: Context, who: Principal, complaint_id: str, *, cursor: str | None, limit: int) -> dict[str, Any]:
    after = decode_id_cursor(cursor)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        load_visible(uow, who, complaint_id)
        rows = store.event_rows(uow.conn, complaint_id, after=after, limit=limit + 1)
        nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return {"items": [{"id": r.id, "complaint_id": r.complaint_id, "kind": r.kind, "actor": r.actor,
                           "at": r.at.isoformat(), "rules": list(r.rules), "data": r.data} for r in rows[:limit]],
                "next_cursor": nxt}

    return read(ctx, q)
