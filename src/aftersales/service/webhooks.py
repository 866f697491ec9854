"""Webhooks: subscriptions, the outbox and its fan-out, and delivery with Standard Webhooks signatures.

- **Outbox (SEC2).** Every domain event written by a unit of work is put in ``webhook_outbox`` **in the same
  transaction** (:func:`fan_out`): one row per event whatever the number of subscribers, so a committed change always
  reaches its subscribers and a rolled-back one never does, and a request never pays for a merchant's thousand
  endpoints. The worker turns each row into one delivery per matching subscription (:func:`fan_out_pending`).
- **Delivery.** :func:`dispatch_due` sends deliveries after the fact, at least once, each keeping the same
  ``webhook-id`` so receivers can drop duplicates. Deliveries of one case (or order, or group) reach a subscription in
  event order: a delivery waits while an earlier one with the same ordering key is still pending.
- **Where (SEC1).** Every delivery resolves the URL's host once, refuses a loopback, private, link-local or metadata
  address (:mod:`.egress`), and connects to the address it checked. The log keeps a coarse error class
  (:data:`ERROR_CLASSES`), never the socket's message: it must not be a port scanner's read-out.
- **Retries (SEC2).** A bounded schedule (:data:`RETRY_SCHEDULE`, the Standard Webhooks one: about 27 h over 8
  attempts); when it runs out the delivery has ``failed`` and the subscription is disabled (``disabled_at``,
  ``disabled_reason: delivery_failed``) until its owner enables it again.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Connection
from standardwebhooks.webhooks import Webhook

from aftersales import i18n
from aftersales.domain.cases import Action, Auto
from aftersales.domain.events import Event
from aftersales.domain.messages import N_, Msg
from aftersales.store import webhooks as store
from aftersales.store.codec import encode

from .cases import decode_cursor, encode_cursor
from .context import Context, Principal, UnitOfWork, read, run
from .egress import Egress, RefusedTarget, Unresolved, check_url, pin
from .errors import Conflict, NotFound

#: S6: what the buyer is told when the order is delivered.
S6_MESSAGE = N_("Your order has arrived. If anything is wrong with it, please contact the shop first: we will sort it out quickly.")
LEASE = timedelta(seconds=60)
TIMEOUT = 10.0
#: SEC2: the wait after each failed attempt (Standard Webhooks: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h,
#: 10 h, 10 h): 8 attempts over about 27.6 hours, then the delivery has failed and its subscription is disabled.
RETRY_SCHEDULE = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                  timedelta(hours=5), timedelta(hours=10), timedelta(hours=10))
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
#: SEC1: what the delivery log says about a failed attempt.
ERROR_CLASSES = ("timeout", "connection_error", "tls_error", "http_3xx", "http_4xx", "http_5xx", "http_other", "refused_address")
FAN_OUT_BATCH = 500

#: SEC2: the event types a subscription may name — every ``case.<action>``, ``order.<kind>`` and ``group.<kind>``
#: an aggregate records — and the wildcards ``case.*``, ``order.*``, ``group.*``.
CASE_KINDS = frozenset({"opened", "refund_issued", "refund_settled", "assigned"} | {str(a) for a in Action} | {str(a) for a in Auto})
ORDER_KINDS = frozenset({"order_paid", "order_shipped", "order_delivered", "order_cancelled", "group_formed", "refund_issued",
                         "refund_settled"})
GROUP_KINDS = frozenset({"group_opened", "group_joined", "group_formed", "group_failed"})
EVENT_TYPES = frozenset({f"case.{k}" for k in CASE_KINDS} | {f"order.{k}" for k in ORDER_KINDS} | {f"group.{k}" for k in GROUP_KINDS}
                        | {"case.*", "order.*", "group.*"})


class SubscriptionRefused(RefusedTarget):
    """SEC2: a subscription over the limits (its count, unknown or repeated event types)."""

    rule = "SEC2"


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
    """The outbox hook of every unit of work: one outbox row per event, when anyone subscribes to its merchant."""
    if not events or not store.any_subscriber(conn, {m for _, _, m in events}):
        return
    rows = []
    for event_id, e, merchant_id in events:
        key = f"case:{e.case_id}" if e.case_id else f"order:{e.order_id}" if e.order_id else f"group:{e.group_id}"
        body = json.dumps(payload(event_id, e, merchant_id), ensure_ascii=False, separators=(",", ":"))
        rows.append({"event_id": event_id, "merchant_id": merchant_id, "event_type": event_type(e), "ordering_key": key,
                     "payload": body, "created_at": e.at})
    store.add_to_outbox(conn, rows)


def fan_out_pending(ctx: Context, *, limit: int = FAN_OUT_BATCH) -> int:
    """The worker's half of the outbox: each row becomes one pending delivery per subscription active now that
    matches it; returns the rows fanned out."""
    def cmd(uow: UnitOfWork) -> int:
        batch = store.outbox_batch(uow.conn, limit)
        if not batch:
            return 0
        subs = store.active_subscriptions(uow.conn, {r.merchant_id for r in batch})
        rows = [{"subscription_id": sub.id, "event_id": r.event_id, "event_type": r.event_type, "ordering_key": r.ordering_key,
                 "payload": r.payload, "status": "pending", "attempts": 0, "next_attempt_at": uow.now, "created_at": r.created_at}
                for r in batch for sub in subs
                if sub.merchant_id in (None, r.merchant_id) and _matches(list(sub.event_types), r.event_type)]
        store.add_deliveries(uow.conn, rows)
        store.remove_from_outbox(uow.conn, [r.id for r in batch])
        return len(batch)

    total = 0
    while (n := run(ctx, cmd)) > 0:
        total += n
        if n < limit:
            break
    return total


# --- subscriptions -------------------------------------------------------------------------------------------
def _check_event_types(event_types: list[str]) -> None:
    """SEC2: known types only, each once."""
    seen: set[str] = set()
    for i, etype in enumerate(event_types):
        if etype not in EVENT_TYPES:
            raise SubscriptionRefused("not a known event type (GET /v1/webhooks/event-types lists them)", field=f"event_types.{i}")
        if etype in seen:
            raise SubscriptionRefused("named twice", field=f"event_types.{i}")
        seen.add(etype)


def view(row: Any, *, secret: str | None = None) -> dict[str, Any]:
    out = {"id": row.id, "merchant_id": row.merchant_id, "url": row.url, "event_types": list(row.event_types), "active": row.active,
           "created_at": row.created_at.isoformat(), "disabled_at": row.disabled_at.isoformat() if row.disabled_at else None,
           "disabled_reason": row.disabled_reason}
    if secret is not None:
        out["secret"] = secret
    return out


def create_subscription(ctx: Context, who: Principal, *, url: str, event_types: list[str], merchant_id: str | None) -> dict[str, Any]:
    """A merchant subscribes to its own events; the platform to one merchant's or (merchant_id None) to all."""
    who.require("platform", "merchant")
    if who.role == "merchant":
        if merchant_id not in (None, who.subject_id):
            raise NotFound("merchant", str(merchant_id))
        merchant_id = who.subject_id
    check_url(url, ctx.egress)  # SEC1
    _check_event_types(event_types)  # SEC2
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    sub_id = "wh_" + secrets.token_hex(8)

    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        if merchant_id is not None and not store.merchant_exists(uow.conn, merchant_id):
            raise NotFound("merchant", merchant_id)
        store.lock_owner(uow.conn, merchant_id)
        if store.count_kept(uow.conn, merchant_id) >= ctx.egress.max_subscriptions:
            raise SubscriptionRefused(f"at most {ctx.egress.max_subscriptions} webhook subscriptions per merchant: delete one first",
                                      field="url")
        store.insert_subscription(uow.conn, id=sub_id, merchant_id=merchant_id, url=url, secret=secret, event_types=event_types,
                                  active=True, created_at=uow.now)
        row = store.subscription(uow.conn, sub_id)
        return view(row, secret=secret)

    return run(ctx, cmd)


def _subscription(uow: UnitOfWork, who: Principal, sub_id: str) -> Any:
    row = store.subscription(uow.conn, sub_id)
    if (row is None or who.role == "buyer" or (who.role == "merchant" and row.merchant_id != who.subject_id)
            or row.disabled_reason == "deleted"):
        raise NotFound("webhook", sub_id)
    return row


def get_subscription(ctx: Context, who: Principal, sub_id: str) -> dict[str, Any]:
    return read(ctx, lambda uow: view(_subscription(uow, who, sub_id)))


def list_subscriptions(ctx: Context, who: Principal, *, cursor: str | None, limit: int) -> dict[str, Any]:
    """A merchant's subscriptions (the platform: every one), by id."""
    who.require("platform", "merchant")
    after = decode_cursor(cursor)

    def q(uow: UnitOfWork) -> dict[str, Any]:
        rows = store.subscriptions(uow.conn, merchant_id=who.subject_id, everyone=who.role == "platform", after=after, limit=limit)
        return {"items": [view(r) for r in rows[:limit]], "next_cursor": encode_cursor(rows[limit - 1].id) if len(rows) > limit else None}

    return read(ctx, q)


def delete_subscription(ctx: Context, who: Principal, sub_id: str) -> None:
    """Stop and forget a subscription (its deliveries stay in the log); frees its place under the limit."""
    def cmd(uow: UnitOfWork) -> None:
        _subscription(uow, who, sub_id)
        store.set_state(uow.conn, sub_id, active=False, disabled_at=uow.now, reason="deleted")

    run(ctx, cmd)


def enable_subscription(ctx: Context, who: Principal, sub_id: str) -> dict[str, Any]:
    """Enable a subscription disabled after its deliveries failed: its URL is checked again (SEC1) and its pending
    deliveries resume."""
    def cmd(uow: UnitOfWork) -> dict[str, Any]:
        row = _subscription(uow, who, sub_id)
        if row.active:
            raise Conflict("the subscription is active already")
        check_url(row.url, ctx.egress)
        store.set_state(uow.conn, sub_id, active=True, disabled_at=None, reason=None)
        return view(store.subscription(uow.conn, sub_id))

    return run(ctx, cmd)


def deliveries(ctx: Context, who: Principal, sub_id: str, *, after: int | None, limit: int) -> dict[str, Any]:
    """The delivery log of a subscription, newest first, each with its attempts."""
    def q(uow: UnitOfWork) -> dict[str, Any]:
        _subscription(uow, who, sub_id)
        rows = store.delivery_page(uow.conn, sub_id, before=after, limit=limit)
        ids = [r.id for r in rows[:limit]]
        attempts: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for a in store.attempts_of(uow.conn, ids):
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
def backoff(attempts: int) -> timedelta | None:
    """The wait after the ``attempts``-th failed attempt, or None: the schedule ran out."""
    return RETRY_SCHEDULE[attempts - 1] if 1 <= attempts <= len(RETRY_SCHEDULE) else None


def claim(ctx: Context, now: datetime, limit: int) -> list[Any]:
    """Lease up to ``limit`` due deliveries whose predecessors (same subscription and ordering key) are done."""
    return run(ctx, lambda uow: store.claim_due(uow.conn, now, limit, LEASE))


def error_class(exc: httpx.HTTPError) -> str:
    """SEC1: the class of a failed request — never its message, which tells a refused port from a closed one."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return "tls_error"
        cause = cause.__cause__ or cause.__context__
    return "connection_error"


def status_class(status: int) -> str:
    return f"http_{status // 100}xx" if 300 <= status < 600 else "http_other"


def http_client(**kwargs: Any) -> httpx.Client:
    """The HTTP client of webhook deliveries: no redirects followed (a 3xx is a failed attempt, never a hop to an
    address nobody checked), no proxy from the environment, and no kept-alive connections (each delivery connects to
    the address it has just checked, with that name's TLS)."""
    return httpx.Client(follow_redirects=False, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0), **kwargs)


def send(http: httpx.Client, row: Any, egress: Egress) -> tuple[int | None, str | None, int]:
    """POST one delivery, signed, to the address its host resolves to now, if that address may be reached (SEC1);
    returns (status code, error class, duration ms).

    The signature's timestamp is the wall-clock time of sending (receivers check it against theirs), even when
    the service runs on the manual clock."""
    started = time.perf_counter()
    try:
        target = pin(row.url, egress)
    except RefusedTarget:
        return None, "refused_address", 0
    except Unresolved:
        return None, "connection_error", int((time.perf_counter() - started) * 1000)
    now = datetime.now(UTC)
    msg_id = f"msg_{row.id}"
    headers = {"host": target.host_header, "content-type": "application/json", "webhook-id": msg_id,
               "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(row.secret).sign(msg_id, now, row.payload), "user-agent": "aftersales-webhooks/1"}
    try:
        response = http.post(target.request_url, content=row.payload.encode(), headers=headers, timeout=TIMEOUT,
                             extensions=target.extensions)
    except httpx.HTTPError as exc:
        return None, error_class(exc), int((time.perf_counter() - started) * 1000)
    ms = int((time.perf_counter() - started) * 1000)
    return response.status_code, None if 200 <= response.status_code < 300 else status_class(response.status_code), ms


def record(ctx: Context, row: Any, now: datetime, status: int | None, error: str | None, duration_ms: int) -> bool:
    """Log one attempt; schedule the next, or give up and disable the subscription (its owner sees
    ``disabled_at`` / ``disabled_reason`` on it)."""
    ok = status is not None and 200 <= status < 300
    error = None if ok else (error or (status_class(status) if status is not None else "connection_error"))[:40]

    def cmd(uow: UnitOfWork) -> bool:
        store.add_attempt(uow.conn, row.id, now, status, error, duration_ms)
        if ok:
            assert status is not None
            store.mark_delivered(uow.conn, row.id, now, status)
            return True
        wait = backoff(row.attempts + 1)
        store.mark_failed_attempt(uow.conn, row.id, status=status, error=str(error), next_attempt_at=now + wait if wait else None)
        if wait is None:
            store.set_state(uow.conn, row.subscription_id, active=False, disabled_at=now, reason="delivery_failed")
        return False

    return run(ctx, cmd)


def dispatch_due(ctx: Context, *, limit: int = 100, client: httpx.Client | None = None) -> int:
    """Fan the outbox out, then send every delivery due now; returns how many were delivered."""
    own = client is None
    http = client or http_client()
    delivered = 0
    try:
        fan_out_pending(ctx)
        while True:
            now = ctx.now()
            rows = claim(ctx, now, limit)
            if not rows:
                return delivered
            for row in rows:
                result = send(http, row, ctx.egress)
                delivered += record(ctx, row, ctx.now(), *result)
    finally:
        if own:
            http.close()
