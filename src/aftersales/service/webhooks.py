"""Webhooks: subscriptions, the outbox fan-out, and delivery with Standard Webhooks signatures.

Every domain event written by a unit of work is matched against the active subscriptions **in the same
transaction** (:func:`fan_out`), so a committed change always has its deliveries and a rolled-back one never
does. :func:`dispatch_due` sends them after the fact: at least once, retried with exponential backoff while
the receiver is down or failing, never given up; each delivery keeps the same ``webhook-id`` so receivers can
drop duplicates. Deliveries of one case (or order, or group) reach a subscription in event order: a delivery
waits while an earlier one with the same ordering key is still pending.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Connection, and_, exists, insert, select, update
from sqlalchemy.orm import aliased
from standardwebhooks.webhooks import Webhook

from aftersales import i18n
from aftersales.domain.events import Event
from aftersales.domain.messages import N_, Msg
from aftersales.store import tables as t
from aftersales.store.codec import encode

from .context import Context, Principal, UnitOfWork, read, run
from .errors import Invalid, NotFound

#: S6: what the buyer is told when the order is delivered.
S6_MESSAGE = N_("Your order has arrived. If anything is wrong with it, please contact the shop first: we will sort it out quickly.")
LEASE = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=1)
TIMEOUT = 10.0


def event_type(e: Event) -> str:
    """``case.<kind>``, ``order.<kind>`` or ``group.<kind>`` (e.g. ``case.opened``, ``order.order_delivered``)."""
    if e.case_id:
        return f"case.{e.kind}"
    if e.order_id:
        return f"order.{e.kind}"
    return f"group.{e.kind}"


def _matches(types: list[str], etype: str) -> bool:
    if not types:
        return True
    return any(etype == p or (p.endswith(".*") and etype.startswith(p[:-1])) for p in types)


def payload(event_id: int, e: Event, merchant_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {"event_id": event_id, "merchant_id": merchant_id, "order_id": e.order_id, "case_id": e.case_id,
                            "group_id": e.group_id, "kind": e.kind, "actor": e.actor.value, "rules": list(e.rules),
                            "from_status": e.from_status, "to_status": e.to_status, "data": encode(e.data)}
    if e.kind == "order_delivered":
        data["message"] = {lang: i18n.render(Msg(S6_MESSAGE), lang) for lang in i18n.LANGUAGES}
    return {"type": event_type(e), "timestamp": e.at.isoformat(), "data": data}


def fan_out(conn: Connection, events: list[tuple[int, Event, str]]) -> None:
    """The outbox hook of every unit of work: one pending delivery per (event, matching subscription)."""
    if not events:
        return
    merchants = {m for _, _, m in events}
    subs = conn.execute(
        select(t.webhook_subscriptions.c.id, t.webhook_subscriptions.c.merchant_id, t.webhook_subscriptions.c.event_types)
        .where(t.webhook_subscriptions.c.active.is_(True),
               (t.webhook_subscriptions.c.merchant_id.is_(None)) | (t.webhook_subscriptions.c.merchant_id.in_(merchants)))
    ).all()
    if not subs:
        return
    rows = []
    for event_id, e, merchant_id in events:
        etype = event_type(e)
        body = None
        for sub in subs:
            if sub.merchant_id not in (None, merchant_id) or not _matches(list(sub.event_types), etype):
                continue
            body = body or json.dumps(payload(event_id, e, merchant_id), ensure_ascii=False, separators=(",", ":"))
            key = f"case:{e.case_id}" if e.case_id else f"order:{e.order_id}" if e.order_id else f"group:{e.group_id}"
            rows.append({"subscription_id": sub.id, "event_id": event_id, "event_type": etype, "ordering_key": key,
                         "payload": body, "status": "pending", "attempts": 0, "next_attempt_at": e.at, "created_at": e.at})
    if rows:
        conn.execute(insert(t.webhook_deliveries), rows)


# --- subscriptions -------------------------------------------------------------------------------------------
def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid("url must be an absolute http(s) URL")


def create_subscription(ctx: Context, who: Principal, *, url: str, event_types: list[str], merchant_id: str | None) -> dict[str, Any]:
    """A merchant subscribes to its own events; the platform to one merchant's or (merchant_id None) to all."""
    who.require("platform", "merchant")
    if who.role == "merchant":
        if merchant_id not in (None, who.subject_id):
            raise NotFound("merchant", str(merchant_id))
        merchant_id = who.subject_id
    _check_url(url)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    sub_id = "wh_" + secrets.token_hex(8)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        if merchant_id is not None and uow.conn.execute(select(t.merchants.c.id).where(t.merchants.c.id == merchant_id)).first() is None:
            raise NotFound("merchant", merchant_id)
        uow.conn.execute(insert(t.webhook_subscriptions).values(id=sub_id, merchant_id=merchant_id, url=url, secret=secret,
                                                                event_types=event_types, active=True, created_at=uow.now))
        return {"id": sub_id, "merchant_id": merchant_id, "url": url, "event_types": event_types, "active": True,
                "secret": secret, "created_at": uow.now.isoformat()}

    return run(ctx, cmd)


def _subscription(uow: UnitOfWork, who: Principal, sub_id: str) -> Any:
    row = uow.conn.execute(select(t.webhook_subscriptions).where(t.webhook_subscriptions.c.id == sub_id)).first()
    if row is None or who.role == "buyer" or (who.role == "merchant" and row.merchant_id != who.subject_id):
        raise NotFound("webhook", sub_id)
    return row


def deliveries(ctx: Context, who: Principal, sub_id: str, *, after: int | None, limit: int) -> dict[str, Any]:
    """The delivery log of a subscription, newest first, each with its attempts."""
    def q(uow: UnitOfWork) -> dict[str, Any]:
        _subscription(uow, who, sub_id)
        d = t.webhook_deliveries
        stmt = select(d).where(d.c.subscription_id == sub_id)
        if after is not None:
            stmt = stmt.where(d.c.id < after)
        rows = uow.conn.execute(stmt.order_by(d.c.id.desc()).limit(limit + 1)).all()
        ids = [r.id for r in rows[:limit]]
        attempts: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        if ids:
            for a in uow.conn.execute(select(t.webhook_attempts).where(t.webhook_attempts.c.delivery_id.in_(ids))
                                      .order_by(t.webhook_attempts.c.id)).all():
                attempts[a.delivery_id].append({"at": a.at.isoformat(), "status_code": a.status_code, "error": a.error,
                                                "duration_ms": a.duration_ms})
        items = [{"id": r.id, "event_id": r.event_id, "event_type": r.event_type, "status": r.status, "attempts": r.attempts,
                  "next_attempt_at": r.next_attempt_at.isoformat() if r.status == "pending" else None,
                  "last_status_code": r.last_status_code, "last_error": r.last_error, "created_at": r.created_at.isoformat(),
                  "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None, "log": attempts[r.id]}
                 for r in rows[:limit]]
        return {"items": items, "next_cursor": str(rows[limit - 1].id) if len(rows) > limit else None}

    return read(ctx, q)


# --- delivery ----------------------------------------------------------------------------------------------
def backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s … doubling, capped at one hour."""
    return min(timedelta(seconds=5 * 2 ** max(0, attempts - 1)), MAX_BACKOFF)


def claim(ctx: Context, now: datetime, limit: int) -> list[Any]:
    """Lease up to ``limit`` due deliveries whose predecessors (same subscription and ordering key) are done."""
    def cmd(uow: UnitOfWork) -> list[Any]:
        d = t.webhook_deliveries
        earlier = aliased(d)
        blocked = exists().where(and_(earlier.c.subscription_id == d.c.subscription_id, earlier.c.ordering_key == d.c.ordering_key,
                                      earlier.c.status == "pending", earlier.c.id < d.c.id))
        stmt = (select(d.c.id, d.c.payload, d.c.attempts, t.webhook_subscriptions.c.url, t.webhook_subscriptions.c.secret)
                .join(t.webhook_subscriptions, t.webhook_subscriptions.c.id == d.c.subscription_id)
                .where(d.c.status == "pending", d.c.next_attempt_at <= now, ~blocked)
                .order_by(d.c.next_attempt_at, d.c.id).limit(limit))
        if uow.conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=d, skip_locked=True)
        rows = uow.conn.execute(stmt).all()
        if rows:
            uow.conn.execute(update(d).where(d.c.id.in_([r.id for r in rows]))
                             .values(attempts=d.c.attempts + 1, next_attempt_at=now + LEASE))
        return list(rows)

    return run(ctx, cmd)


def send(client: httpx.Client, row: Any) -> tuple[int | None, str | None, int]:
    """POST one delivery, signed; returns (status code, error, duration ms).

    The signature's timestamp is the wall-clock time of sending (receivers check it against theirs), even when
    the service runs on the manual clock."""
    now = datetime.now(UTC)
    msg_id = f"msg_{row.id}"
    headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(row.secret).sign(msg_id, now, row.payload), "user-agent": "aftersales-webhooks/1"}
    started = time.perf_counter()
    try:
        response = client.post(row.url, content=row.payload.encode(), headers=headers, timeout=TIMEOUT)
        return response.status_code, None, int((time.perf_counter() - started) * 1000)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500], int((time.perf_counter() - started) * 1000)


def record(ctx: Context, row: Any, now: datetime, status: int | None, error: str | None, duration_ms: int) -> bool:
    ok = status is not None and 200 <= status < 300

    def cmd(uow: UnitOfWork) -> bool:
        d = t.webhook_deliveries
        uow.conn.execute(insert(t.webhook_attempts).values(delivery_id=row.id, at=now, status_code=status, error=error,
                                                           duration_ms=duration_ms))
        if ok:
            uow.conn.execute(update(d).where(d.c.id == row.id).values(status="delivered", delivered_at=now, last_status_code=status,
                                                                      last_error=None))
        else:
            uow.conn.execute(update(d).where(d.c.id == row.id).values(
                next_attempt_at=now + backoff(row.attempts + 1), last_status_code=status,
                last_error=error or f"HTTP {status}"))
        return ok

    return run(ctx, cmd)


def dispatch_due(ctx: Context, *, limit: int = 100, client: httpx.Client | None = None) -> int:
    """Send every delivery due now; returns how many were delivered."""
    own = client is None
    client = client or httpx.Client()
    delivered = 0
    try:
        while True:
            now = ctx.now()
            rows = claim(ctx, now, limit)
            if not rows:
                return delivered
            for row in rows:
                sent_at = ctx.now()
                delivered += record(ctx, row, sent_at, *send(client, row))
    finally:
        if own:
            client.close()
